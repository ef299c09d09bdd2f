"""What every Plotly figure of resviz shares: the themed layout and the values an axis can show.

The model figures (:mod:`resviz.render.figures`) and the comparison report's figures
(:mod:`resviz.render.report.plots`) both go through :func:`layout`, so template, font and margins
come from :mod:`resviz.render.theme` in one place; each caller passes only what its figure adds.
"""

from __future__ import annotations

import math

from resviz.extras import missing
from resviz.render import theme

try:
    import plotly.graph_objects as go
except ImportError as exc:  # Plotly comes with the 'reports' extra
    raise missing(exc, "reports", "Plotly figures") from None

MARGIN: dict[str, int] = {"l": 50, "r": 20, "t": 50, "b": 40}
"""Default margins in pixels: room for tick labels on the left, a title on top."""


def layout(fig: go.Figure, title: str, *, title_x: float | None = 0.0, **overrides: object) -> go.Figure:
    """Apply the theme's template, font and margins and set the title; return ``fig``.

    ``title_x`` places the title (0: left-aligned; None: where the template puts it). ``overrides``
    are any ``update_layout`` arguments (``height``, ``xaxis_title``, ``legend`` ...); nested ones
    such as ``font`` or ``margin`` are merged into the theme's values, not swapped for them.
    """
    heading: dict[str, object] = {"text": title}
    if title_x is not None:
        heading["x"] = title_x
    fig.update_layout(template=theme.PLOTLY_TEMPLATE, title=heading, font={"family": theme.FONT}, margin=MARGIN)
    if overrides:
        fig.update_layout(**overrides)
    return fig


def finite(v: float | None) -> float | None:
    """``v`` as a float where it is finite, else None: Plotly draws None as a gap."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def positive(v: float | None) -> float | None:
    """``v`` where a log axis can show it (finite and above 0), else None: a gap, not a crash or a 0."""
    f = finite(v)
    return f if f is not None and f > 0 else None


def log10(v: float | None) -> float | None:
    """log10 of ``v`` where a log scale can show it (see :func:`positive`), else None."""
    p = positive(v)
    return math.log10(p) if p is not None else None


__all__ = ["MARGIN", "finite", "layout", "log10", "positive"]
