"""The diagram views and the metrics a diagram can be coloured by: the two closed sets every
surface offers, and which of them need a measured trace."""

from __future__ import annotations

import difflib
from enum import StrEnum

from resviz.errors import ResvizError, quote


class View(StrEnum):
    """Every view, in the order an explainer would show them (He et al. 2015, Figs. 2, 3 and 5 and
    Table 1; He et al. 2016, Fig. 4)."""

    OVERVIEW = "overview"
    BASIC_BLOCK = "basic-block"
    BOTTLENECK = "bottleneck"
    STAGES = "stages"
    DIMENSIONS = "dimensions"
    SKIP_TYPES = "skip-types"
    GRADIENT_FLOW = "gradient-flow"
    LAYERS = "layers"

    @property
    def needs_blocks(self) -> bool:
        """Block views explain skip connections: they need residual blocks with a skip path."""
        return self in (View.BASIC_BLOCK, View.BOTTLENECK, View.SKIP_TYPES, View.GRADIENT_FLOW)


class ColorBy(StrEnum):
    """What a diagram's nodes may be coloured by; the last two are measurements (a trace)."""

    MACS = "macs"
    PARAMS = "params"
    STD = "std"
    GRAD_RATIO = "grad-ratio"

    @property
    def measured(self) -> bool:
        return self in (ColorBy.STD, ColorBy.GRAD_RATIO)


def check_view(view: str) -> View:
    """Normalise a view name or raise a one-line error suggesting the closest one."""
    key = view.strip().lower().replace("_", "-")
    names = [v.value for v in View]
    if key in names:
        return View(key)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ResvizError(f"unknown view {quote(view)}{hint}: choose one of {', '.join(names)}")


def color_by_key(color_by: str | None) -> ColorBy | None:
    """Normalise a ``color_by`` name or raise a one-line error; the CLI checks it before tracing."""
    if color_by is None:
        return None
    key = color_by.strip().lower()
    names = [c.value for c in ColorBy]
    if key not in names:
        raise ResvizError(f"unknown color-by {quote(color_by)}: choose one of {', '.join(names)}")
    return ColorBy(key)


def needs_trace(view: View, color_by: ColorBy | None) -> bool:
    """Whether drawing ``view`` coloured by ``color_by`` needs measured statistics: the surfaces
    trace the model first exactly when this is true."""
    return view is View.GRADIENT_FLOW or (color_by is not None and color_by.measured)


VIEWS: tuple[str, ...] = tuple(v.value for v in View)
"""The view names, for menus and help texts."""

COLOR_BY: tuple[str, ...] = tuple(c.value for c in ColorBy)
"""The colour-by names, for menus and help texts."""


__all__ = ["COLOR_BY", "VIEWS", "ColorBy", "View", "check_view", "color_by_key", "needs_trace"]
