"""Small SVG figures written as text, and SVG resized to fit a notebook cell.

Notebook views of records (:mod:`resviz.render.notebook`) draw a line or two where a picture says
more than a table: gradient norm against block depth, a loss curve. They are written here by hand so
that they need neither Plotly nor a browser script: a few hundred bytes of well-formed SVG that any
notebook, viewer or HTML sanitiser shows as it is. Every text that comes from a user (model names,
titles) is escaped. Series are thinned to at most :data:`MAX_POINTS` points, so a figure's size does
not grow with the number of blocks or steps.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from resviz.render.format import sig

MAX_POINTS = 300
"""The most points one series draws; longer series are thinned evenly (the last point is kept)."""

WIDTH, HEIGHT = 440, 160
LEFT, RIGHT, TOP, BOTTOM = 56, 10, 32, 28
TITLE_Y, LEGEND_Y = 11, 25

NOTEBOOK_WIDTH_PT = 680.0
"""The widest a diagram is shown in a notebook cell (about 900 pixels); wider ones are scaled down."""


@dataclass(frozen=True)
class Series:
    """One named line: y values (None where not measured) at x positions, in one colour."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def escape(text: object) -> str:
    """Text made safe for XML: escaped, and control characters (not allowed in XML 1.0) replaced."""
    return html.escape(_CONTROL.sub("\ufffd", str(text)), quote=True)


def thin(count: int, limit: int = MAX_POINTS) -> list[int]:
    """At most ``limit`` evenly spaced indices into a sequence of ``count`` items, first and last kept."""
    if count <= limit:
        return list(range(count))
    step = (count - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def _usable(y: float | None, log_y: bool) -> bool:
    return y is not None and math.isfinite(y) and (y > 0 or not log_y)


def _points(s: Series, log_y: bool) -> list[tuple[float, float] | None]:
    """The thinned points of one series on the value scale; None breaks the line."""
    out: list[tuple[float, float] | None] = []
    for i in thin(min(len(s.xs), len(s.ys))):
        y = s.ys[i]
        if y is not None and _usable(y, log_y):
            out.append((float(s.xs[i]), math.log10(y) if log_y else float(y)))
        else:
            out.append(None)
    return out


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        pad = abs(lo) * 0.1 or 0.5
        return lo - pad, hi + pad
    return lo, hi


class _Frame:
    """Maps data coordinates into the plot area of a :data:`WIDTH` x :data:`HEIGHT` figure."""

    def __init__(self, xs: tuple[float, float], ys: tuple[float, float]) -> None:
        self.xs, self.ys = xs, ys

    def x(self, value: float) -> float:
        lo, hi = self.xs
        return LEFT + (value - lo) / (hi - lo) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        lo, hi = self.ys
        return HEIGHT - BOTTOM - (value - lo) / (hi - lo) * (HEIGHT - TOP - BOTTOM)


def _polylines(points: list[tuple[float, float] | None], frame: _Frame, color: str) -> list[str]:
    """One ``<polyline>`` per unbroken run of points; a lone point becomes a dot."""
    runs: list[list[tuple[float, float]]] = [[]]
    for p in points:
        if p is None:
            runs.append([])
        else:
            runs[-1].append(p)
    out = []
    for run in (r for r in runs if r):
        coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in run)
        if len(run) == 1:
            x, y = run[0]
            out.append(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="2" fill="{escape(color)}"/>')
        else:
            out.append(f'<polyline points="{coords}" fill="none" stroke="{escape(color)}" stroke-width="1.5"/>')
    return out


def _tick(value: float, log_y: bool) -> str:
    if log_y:  # a padded axis end may pass the largest float's exponent
        return sig(10.0 ** min(value, 308.0))
    return sig(value)


def _axes(frame: _Frame, x_label: str, y_label: str, log_y: bool) -> list[str]:
    """The plot box, the end values of both axes and the axis labels."""
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = HEIGHT - BOTTOM, TOP
    (xa, xb), (ya, yb) = frame.xs, frame.ys
    label_y = f"{y_label} (log)" if log_y else y_label
    return [
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#999999"/>',
        f'<text x="{x0 - 3}" y="{y1 + 8}" text-anchor="end">{escape(_tick(yb, log_y))}</text>',
        f'<text x="{x0 - 3}" y="{y0}" text-anchor="end">{escape(_tick(ya, log_y))}</text>',
        f'<text x="{x0}" y="{y0 + 12}" text-anchor="start">{escape(sig(xa))}</text>',
        f'<text x="{x1}" y="{y0 + 12}" text-anchor="end">{escape(sig(xb))}</text>',
        f'<text x="{(x0 + x1) / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="12" y="{(y0 + y1) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(y0 + y1) / 2:.0f})">{escape(label_y)}</text>',
    ]


def _legend(series: Sequence[Series]) -> list[str]:
    """Coloured names under the title, right-aligned, when there is more than one line."""
    if len(series) < 2:
        return []
    out, x = [], WIDTH - RIGHT
    for s in reversed(series):
        out.append(f'<text x="{x}" y="{LEGEND_Y}" text-anchor="end" fill="{escape(s.color)}">{escape(s.name)}</text>')
        x -= 8 + 6 * len(s.name)
    return out


def line_chart(
    series: Sequence[Series], title: str, x_label: str, y_label: str, log_y: bool = False,
) -> str:
    """A small line chart as SVG text, or an empty string when no series has a point to draw.

    ``log_y`` plots log10 of the values (gradient norms span orders of magnitude); values that are
    missing, not finite or (on a log scale) not positive break the line instead of bending it.
    """
    lines = [(s, _points(s, log_y)) for s in series]
    drawn = [p for _, pts in lines for p in pts if p is not None]
    if not drawn:
        return ""
    frame = _Frame(_span([x for x, _ in drawn]), _span([y for _, y in drawn]))
    body = _axes(frame, x_label, y_label, log_y) + _legend(series)
    for s, pts in lines:
        body += _polylines(pts, frame, s.color)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="10">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="{TITLE_Y}" font-weight="bold">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


_SVG_TAG = re.compile(r"<svg\b[^>]*>")
_SIZE = re.compile(r'\s(width|height)="([0-9.]+)(pt|px)?"')
_STYLE = re.compile(r'\sstyle="[^"]*"')


def fit_svg(svg: str, max_width_pt: float = NOTEBOOK_WIDTH_PT) -> str:
    """Graphviz's SVG sized for a notebook cell: never wider than ``max_width_pt``, never clipped.

    Graphviz writes the drawing's natural size (``width="2400pt"``) with a ``viewBox``; a cell shows
    an inline SVG at that size and clips or scrolls what does not fit. A wider drawing is scaled down
    to ``max_width_pt`` with its aspect ratio kept (the ``viewBox`` scales the content), and the root
    element gets ``max-width: 100%`` so that a narrower cell shrinks it further. A small drawing keeps
    its size: scaling it up would only blur its text.
    """
    match = _SVG_TAG.search(svg)
    if match is None:
        return svg
    tag = match.group(0)
    sizes = {name: float(value) for name, value, _unit in _SIZE.findall(tag)}
    if "width" not in sizes or "height" not in sizes or "viewBox" not in tag:
        return svg
    scale = min(1.0, max_width_pt / sizes["width"]) if sizes["width"] > 0 else 1.0
    width, height = sizes["width"] * scale, sizes["height"] * scale
    new_tag = _STYLE.sub("", _SIZE.sub("", tag))
    new_tag = new_tag.replace(
        "<svg", f'<svg width="{width:.1f}pt" height="{height:.1f}pt" style="max-width:100%;height:auto"', 1,
    )
    return svg[: match.start()] + new_tag + svg[match.end():]


__all__ = ["MAX_POINTS", "NOTEBOOK_WIDTH_PT", "Series", "escape", "fit_svg", "line_chart", "thin"]
