"""Graphviz diagrams of residual networks, drawn from the model's own Summary.

Every picture is computed from the static analysis of the actual model (and, for measured
quantities, from a trace), never from a template: change the spec and the picture changes. The
views follow the figures a ResNet explainer needs (He et al. 2015, Figs. 2, 3 and 5 and Table 1;
He et al. 2016, Fig. 4 for pre-activation)::

    resviz.diagram("resnet50", view="dimensions")   # a graphviz.Digraph; renders in notebooks

Renderers only build ``graphviz.Digraph`` objects from records (:func:`draw` takes a
:class:`~resviz.records.Summary`); analysing a model is :mod:`resviz.api`'s job and writing files
the CLI's.
"""

from __future__ import annotations

from collections.abc import Callable

import graphviz

from resviz.errors import ResvizError
from resviz.records import Summary, Trace
from resviz.render.diagrams.blocks import basic_block, bottleneck, skip_types
from resviz.render.diagrams.context import Context
from resviz.render.diagrams.gradient import gradient_flow
from resviz.render.diagrams.layers import layers
from resviz.render.diagrams.metrics import check_color_by
from resviz.render.diagrams.overview import dimensions, overview, stages
from resviz.render.diagrams.views import COLOR_BY, VIEWS, ColorBy, View, check_view, color_by_key, needs_trace


def dot_error(exc: graphviz.CalledProcessError) -> str:
    """The first line of what ``dot`` printed on stderr: the reason, without its follow-up lines."""
    raw = exc.stderr or b""
    detail = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).strip().splitlines()
    return detail[0] if detail else str(exc)


def _renderers() -> dict[str, Callable[[Context], graphviz.Digraph]]:
    return {
        "overview": overview,
        "stages": stages,
        "dimensions": dimensions,
        "basic-block": basic_block,
        "bottleneck": bottleneck,
        "skip-types": skip_types,
        "gradient-flow": gradient_flow,
        "layers": layers,
    }


def check_residual(summary: Summary, view: str) -> None:
    """Refuse a block view of a model without residual blocks (one line, before any work)."""
    Context(summary=summary, view=check_view(view)).require_residual()


def check_depth(depth: int | None) -> None:
    if depth is not None and depth < 1:
        raise ResvizError(f"depth must be at least 1, got {depth}")


def draw(
    summary: Summary,
    view: str = "overview",
    depth: int | None = None,
    color_by: str | None = None,
    trace: Trace | None = None,
    block: str | None = None,
) -> graphviz.Digraph:
    """Draw one view of a model's static analysis as a ``graphviz.Digraph``.

    ``depth`` folds the ``layers`` view (1: stages, 2: blocks, 3+: layers). ``color_by`` is one of
    ``macs``, ``params``, ``std`` or ``grad-ratio``; the last two are measurements and need
    ``trace`` (from ``resviz.trace``). ``block`` picks the block drawn by the block views
    (default: a representative one). Raises :class:`ResvizError` for impossible requests.
    """
    key = check_view(view)
    metric = check_color_by(color_by, trace)
    check_depth(depth)
    ctx = Context(summary=summary, view=key, depth=depth, metric=metric, trace=trace, block=block)
    if key.needs_blocks:
        ctx.require_residual()
    return _renderers()[key](ctx)


__all__ = [
    "COLOR_BY",
    "VIEWS",
    "ColorBy",
    "View",
    "check_color_by",
    "check_depth",
    "check_view",
    "color_by_key",
    "dot_error",
    "draw",
    "needs_trace",
]
