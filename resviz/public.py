"""The Python surface's diagrams: ``resviz.diagram`` composes the api with the Graphviz renderer
for notebooks and scripts, as the CLI and the dashboard do for their users."""

from __future__ import annotations

import graphviz

from resviz.api import SizeLike, Target, static_summary
from resviz.records import Summary, Trace
from resviz.render.diagrams import check_color_by, check_depth, check_view, draw


def diagram(
    model_or_summary: Target | Summary,
    view: str = "overview",
    input_size: SizeLike | None = None,
    depth: int | None = None,
    color_by: str | None = None,
    trace: Trace | None = None,
    block: str | None = None,
) -> graphviz.Digraph:
    """Draw one view of a model as a ``graphviz.Digraph`` (renders inline in notebooks).

    ``model_or_summary``: a preset name, a spec file, a ``ResNetSpec``, an ``nn.Module`` or a ready
    ``Summary``. The request is checked before the model is analysed; see
    :func:`resviz.render.diagrams.draw` for ``view``, ``depth``, ``color_by``, ``trace`` and ``block``.
    """
    check_view(view)
    check_color_by(color_by, trace)
    check_depth(depth)
    summary = static_summary(model_or_summary, input_size)
    return draw(summary, view=view, depth=depth, color_by=color_by, trace=trace, block=block)


__all__ = ["diagram"]
