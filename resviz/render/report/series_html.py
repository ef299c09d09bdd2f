"""The report of one monitored run as a self-contained HTML page (returned as a string).

Plotly's JavaScript is inlined once, as in the comparison report (:mod:`resviz.render.report.html`),
whose stylesheet this page shares. Figures: block x step heatmaps of the gradient at each block
input, of the shortcut's share of it and of main / skip, then the loss curve and the gradient at the
first and the last block over steps. Every heatmap cell's hover text, and its ``customdata``, is the
series' own value; the colours of the gradient and the ratio are its log10, as they span orders of
magnitude.
"""

from __future__ import annotations

import html

from resviz import __version__
from resviz.extras import missing
from resviz.records import MonitorSeries
from resviz.render import theme
from resviz.render.plot_style import finite, log10, positive
from resviz.render.report.page import figures_html, page, table_html
from resviz.render.report.plots import report_layout
from resviz.render.report.series import (
    block_labels,
    block_table,
    losses,
    ratio_grid,
    settings_table,
    share_grid,
    snapshot_table,
    title,
)

try:
    import plotly.graph_objects as go
except ImportError as exc:  # Plotly comes with the 'reports' extra
    raise missing(exc, "reports", "an HTML report") from None

Grid = list[list[float | None]]


def heatmap(series: MonitorSeries, grid: Grid, label: str, log: bool) -> go.Figure:
    """Block x step heatmap of ``grid`` (``rows[block][snapshot]``): colours log10 of the values when
    ``log``, else the values; the hover text and ``customdata`` hold the values themselves."""
    z = [[log10(v) if log else finite(v) for v in row] for row in grid]
    fig = go.Figure(go.Heatmap(
        z=z, customdata=grid, x=list(series.steps), y=block_labels(series), colorscale=theme.PLOTLY_SCALE,
        colorbar={"title": f"log10 {label}" if log else label},
        zmin=None if log else 0.0, zmax=None if log else 1.0,
        hovertemplate="step %{x}<br>%{y}<br>" + html.escape(label) + " = %{customdata:.4g}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    report_layout(fig, f"{label} per block over training", "step", "block")
    fig.update_layout(height=max(300, 14 * len(grid) + 120))
    return fig


def loss_curve(series: MonitorSeries) -> go.Figure | None:
    """The training loss at every step ``mon.log_loss`` saw; None when no loss was logged."""
    steps, values = losses(series)
    if not steps:
        return None
    fig = go.Figure(go.Scatter(x=steps, y=values, mode="lines", name="loss", line={"color": theme.TOTAL_COLOR}))
    return report_layout(fig, "Training loss", "step", "loss")


def end_blocks(series: MonitorSeries) -> go.Figure:
    """The gradient at the first and the last block's input over steps (log scale)."""
    grid = series.matrix("grad_total")
    names = block_labels(series)
    fig = go.Figure()
    for i, color in ((0, theme.MAIN_COLOR), (len(grid) - 1, theme.SKIP_COLOR)):
        fig.add_scatter(x=list(series.steps), y=[positive(v) for v in grid[i]], customdata=grid[i],
                        mode="lines+markers", name=names[i], line={"color": color})
    return report_layout(fig, "Gradient at the first and the last block over training", "step", "|dL/dx| (log)",
                   log_y=True)


def figures(series: MonitorSeries) -> list[tuple[str, go.Figure]]:
    """Every figure of the page, in order, with a stable id."""
    out = [
        ("heat-grad-total", heatmap(series, series.matrix("grad_total"), "grad total", log=True)),
        ("heat-skip-share", heatmap(series, share_grid(series), "skip share", log=False)),
        ("heat-ratio", heatmap(series, ratio_grid(series), "main / skip", log=True)),
    ]
    loss = loss_curve(series)
    if loss is not None:
        out.append(("loss", loss))
    out.append(("end-blocks", end_blocks(series)))
    return out


def render_page(series: MonitorSeries) -> str:
    """The full page of a series :func:`resviz.render.report.series.check_series` accepted."""
    values = {
        "every": html.escape(str(series.every)),
        "settings_table": table_html(settings_table(series), cls="settings"),
        "figures": figures_html(figures(series)),
        "snapshot_table": table_html(snapshot_table(series)),
        "last_step": html.escape(str(series.steps[-1])),
        "block_table": table_html(block_table(series)),
    }
    return page("series.html", values, title(series), __version__)


__all__ = ["end_blocks", "figures", "heatmap", "loss_curve", "render_page"]
