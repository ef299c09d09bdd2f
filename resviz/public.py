"""The Python surface: what ``import resviz`` offers beyond :mod:`resviz.api`, composing the api
with the renderers for notebooks and scripts (as the CLI and the dashboard do for their users)."""

from __future__ import annotations

from pathlib import Path

import graphviz

from resviz.api import SizeLike, Target, static_summary
from resviz.records import Comparison, Summary, Trace
from resviz.render.diagrams import check_color_by, check_depth, check_view, draw
from resviz.render.report import render_html, render_markdown


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


def write_report(comparison: Comparison, path: str | Path) -> Path:
    """Write ``comparison`` as a self-contained HTML page (``.html``), Markdown (``.md``) or JSON
    (anything else), whole or not at all (a temporary file renamed into place)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix in (".html", ".htm"):
        text = render_html(comparison)
    elif suffix == ".md":
        text = render_markdown(comparison)
    else:
        text = comparison.to_json(indent=1)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


__all__ = ["diagram", "render_html", "render_markdown", "write_report"]
