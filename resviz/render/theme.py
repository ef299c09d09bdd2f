"""One visual theme for Graphviz diagrams, Plotly figures and terminal tables.

Colours come from the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which stays
distinguishable under the common forms of colour blindness.
"""

from __future__ import annotations

from resviz.records import ShortcutKind

FONT = "Helvetica"
FONT_SIZE = 11

# Layer kinds -> fill colours.
LAYER_COLORS: dict[str, str] = {
    "conv": "#56B4E9",  # sky blue
    "norm": "#F0E442",  # yellow
    "act": "#E69F00",  # orange
    "pool": "#009E73",  # bluish green
    "linear": "#CC79A7",  # reddish purple
    "add": "#FFFFFF",
    "io": "#DDDDDD",
    "other": "#EEEEEE",
}

# Skip path kinds -> edge colour and Graphviz style, so they read apart without colour too.
SKIP_STYLES: dict[ShortcutKind, dict[str, str]] = {
    ShortcutKind.IDENTITY: {"color": "#000000", "style": "solid", "penwidth": "1.6"},
    ShortcutKind.PROJECTION: {"color": "#0072B2", "style": "bold", "penwidth": "2.2"},
    ShortcutKind.ZERO_PAD: {"color": "#D55E00", "style": "dashed", "penwidth": "1.6"},
}

# Gradient paths.
MAIN_COLOR = "#0072B2"  # blue
SKIP_COLOR = "#D55E00"  # vermilion
TOTAL_COLOR = "#000000"

# Continuous scale for colour-by (MACs, parameters, std, gradient ratio); also a Plotly scale name.
SEQUENTIAL = ["#FFFFE5", "#FEE391", "#FEC44F", "#FE9929", "#EC7014", "#CC4C02", "#8C2D04"]
PLOTLY_SCALE = "YlOrBr"
PLOTLY_TEMPLATE = "plotly_white"
MODEL_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def layer_kind(type_name: str) -> str:
    """Map a module class name to a theme layer kind."""
    t = type_name.lower()
    if "conv" in t:
        return "conv"
    if "norm" in t:
        return "norm"
    if any(a in t for a in ("relu", "gelu", "silu", "sigmoid", "tanh", "swish")):
        return "act"
    if "pool" in t:
        return "pool"
    if "linear" in t:
        return "linear"
    if "add" in t:
        return "add"
    return "other"


def sequential_color(fraction: float) -> str:
    """A colour from :data:`SEQUENTIAL` for a value scaled into [0, 1]."""
    f = min(max(fraction, 0.0), 1.0)
    return SEQUENTIAL[min(int(f * len(SEQUENTIAL)), len(SEQUENTIAL) - 1)]


def model_color(index: int) -> str:
    """The colour of the ``index``-th model (or series) in a figure, cycling through :data:`MODEL_COLORS`."""
    return MODEL_COLORS[index % len(MODEL_COLORS)]
