"""Plotly figures of a :class:`~resviz.records.Comparison` (returned, never shown or saved).

Gradient norms span orders of magnitude between plain and residual nets, so their axes are
logarithmic; values that a log axis cannot show (zero, NaN, infinity) become gaps.
"""

from __future__ import annotations

from resviz.extras import missing
from resviz.records import Comparison, ModelResult, TrainingStatus
from resviz.render import theme
from resviz.render.plot_style import finite, layout, log10, positive

try:
    import plotly.graph_objects as go
except ImportError as exc:  # Plotly comes with the 'reports' extra
    raise missing(exc, "reports", "an HTML report") from None

REPORT_LAYOUT: dict[str, object] = {
    "height": 380, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "font": {"size": theme.FONT_SIZE + 1}, "legend": {"orientation": "h", "y": -0.2},
}
"""What the report's figures set on top of :func:`~resviz.render.plot_style.layout`: one height, so
the page reads as a column of equal panels, and the legend below the plot, clear of the title.
Their titles stay where the template puts them (``title_x=None``)."""


def report_layout(fig: go.Figure, title: str, x: str, y: str, log_y: bool = False) -> go.Figure:
    """The shared layout with axis titles; a y axis is set to log only when asked (a heatmap's
    axis stays categorical)."""
    axes: dict[str, object] = {"xaxis_title": x, "yaxis_title": y}
    if log_y:
        axes["yaxis_type"] = "log"
    return layout(fig, title, title_x=None, **REPORT_LAYOUT, **axes)


def grad_vs_depth(c: Comparison) -> go.Figure:
    """Gradient norm at each block input against depth (block 1 is nearest the input)."""
    fig = go.Figure()
    for i, m in enumerate(c.models):
        fig.add_scatter(
            x=[b.depth for b in m.blocks], y=[positive(b.grad_total) for b in m.blocks], mode="lines+markers",
            name=m.name, line={"color": theme.model_color(i)}, text=[b.name for b in m.blocks],
            hovertemplate="%{text}<br>|dL/dx| = %{y:.4g}<extra>" + m.name + "</extra>",
        )
    return report_layout(fig, "Gradient norm at each block input (at initialisation)", "block (input -> output)",
                   "|dL/dx| (log)", log_y=True)


def branch_grads(c: Comparison) -> go.Figure:
    """Per block: the gradient arriving through the main path (solid) and the skip path (dashed)."""
    fig = go.Figure()
    for i, m in enumerate(c.models):
        x = [b.depth for b in m.blocks]
        fig.add_scatter(x=x, y=[positive(b.grad_main) for b in m.blocks], mode="lines", name=f"{m.name} main",
                        line={"color": theme.model_color(i)})
        if m.has_skips:
            fig.add_scatter(x=x, y=[positive(b.grad_skip) for b in m.blocks], mode="lines",
                            name=f"{m.name} skip", line={"color": theme.model_color(i), "dash": "dash"})
    return report_layout(fig, "Gradient through the main path and through the shortcut", "block",
                   "gradient norm (log)", log_y=True)


def branch_ratio(c: Comparison) -> go.Figure:
    """main / skip gradient per block; below 1 the shortcut carries most of the gradient."""
    fig = go.Figure()
    for i, m in enumerate(c.models):
        if not m.has_skips:
            continue
        fig.add_scatter(x=[b.depth for b in m.blocks], y=[positive(b.ratio) for b in m.blocks],
                        mode="lines+markers", name=m.name, line={"color": theme.model_color(i)})
    fig.add_hline(y=1.0, line={"color": "#999999", "dash": "dot"})
    return report_layout(fig, "Main-path gradient / skip-path gradient per block", "block", "main / skip (log)",
                   log_y=True)


def response_std(c: Comparison) -> go.Figure:
    """He et al. 2015, Fig. 7: std of each 3x3 layer's response (after BN) against depth."""
    fig = go.Figure()
    trained = any(m.act_std_trained for m in c.models)
    for i, m in enumerate(c.models):
        curves = [("at init", m.act_std, "dot" if trained else "solid")]
        if m.act_std_trained:
            curves.append((f"after {m.training.steps_done if m.training else 0} steps", m.act_std_trained, "solid"))
        for label, points, dash in curves:
            fig.add_scatter(
                x=[a.depth for a in points], y=[a.std for a in points], mode="lines", name=f"{m.name} {label}",
                line={"color": theme.model_color(i), "dash": dash}, text=[a.name for a in points],
                hovertemplate="%{text}<br>std = %{y:.4g}<extra>" + m.name + "</extra>",
            )
    return report_layout(fig, "Std of 3x3 layer responses after BN (He et al. 2015, Fig. 7 view)", "3x3 layer index",
                   "std")


def loss_curves(c: Comparison) -> go.Figure:
    """Training loss per step; a model stopped by a NaN loss ends with an x marker."""
    fig = go.Figure()
    for i, m in enumerate(c.models):
        if m.training is None:
            continue
        losses = [finite(v) for v in m.training.losses]
        fig.add_scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines", name=m.name,
                        line={"color": theme.model_color(i)})
        if m.training.status == TrainingStatus.NAN:
            last = next((v for v in reversed(losses) if v is not None), None)
            fig.add_scatter(x=[len(losses)], y=[last], mode="markers", showlegend=False,
                            marker={"symbol": "x", "size": 12, "color": theme.model_color(i)},
                            hovertext=f"{m.name}: loss NaN, stopped", hoverinfo="text")
    return report_layout(fig, "Training loss (same batches for every model)", "step", "cross-entropy")


def held_out_loss(c: Comparison) -> go.Figure:
    """Held-out loss at each evaluation (solid) over the training loss of each step (faint): a gap
    that opens between them is over-fitting, a held-out curve that stays high is failing to train."""
    fig = _train_and_held_out(c, "loss")
    return report_layout(fig, "Training and held-out loss (held-out: eval mode, every held-out image)", "step",
                   "cross-entropy")


def held_out_error(c: Comparison) -> go.Figure:
    """Held-out error at each evaluation (solid) and each step's training error on its batch
    (faint): He et al. 2015, Fig. 6's view of plain against residual nets."""
    fig = report_layout(_train_and_held_out(c, "error"), "Training and held-out error (He et al. 2015, Fig. 6 view)",
                  "step", "error")
    fig.update_yaxes(tickformat=".0%")
    return fig


def _train_and_held_out(c: Comparison, quantity: str) -> go.Figure:
    """Per model with a held-out evaluation: the training ``loss`` or ``error`` of every step, faint,
    and the held-out one at each evaluation, solid, in the model's colour."""
    fig = go.Figure()
    for i, m in enumerate(c.models):
        run = m.training
        if run is None or run.held_out is None:
            continue
        color = theme.model_color(i)
        train = run.losses if quantity == "loss" else run.errors
        if train:
            fig.add_scatter(x=list(range(1, len(train) + 1)), y=[finite(v) for v in train], mode="lines",
                            name=f"{m.name} train", opacity=0.35, line={"color": color, "width": 1})
        fig.add_scatter(x=list(run.held_out.steps), y=[finite(v) for v in getattr(run.held_out, quantity)],
                        mode="lines+markers", name=f"{m.name} held-out", line={"color": color})
    return fig


def block_heatmap(
    m: ModelResult, quantity: str = "grad_total", zrange: tuple[float, float] | None = None,
) -> go.Figure | None:
    """Block x step heatmap (log10) of ``grad_total``, ``grad_main``, ``grad_skip`` or ``ratio``.

    ``ratio`` is main / skip per block and step, the quantity of the init table as it evolves.
    ``zrange`` shares one colour scale between models, so equal colours mean equal values.
    """
    series = m.training.series if m.training else None
    if series is None or not series.snapshots:
        return None
    if quantity == "ratio":  # rows[block][snapshot], as series.matrix lays out a recorded field
        rows = [[snap.blocks[i].grad_ratio for snap in series.snapshots] for i in range(len(series.block_names))]
        label = "main / skip"
    else:
        rows = series.matrix(quantity)
        label = quantity.replace("_", " ")
    fig = go.Figure(go.Heatmap(
        z=[[log10(v) for v in r] for r in rows], x=[s + 1 for s in series.steps], y=list(series.block_names),
        colorscale=theme.PLOTLY_SCALE, colorbar={"title": f"log10 {label}"},
        zmin=zrange[0] if zrange else None, zmax=zrange[1] if zrange else None,
        hovertemplate="step %{x}<br>%{y}<br>log10 = %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    report_layout(fig, f"{m.name}: {label} per block over training", "step", "block")
    fig.update_layout(height=max(300, 14 * len(rows) + 120))
    return fig


def _log_range(c: Comparison) -> tuple[float, float] | None:
    """The log10 range of every model's monitored ``grad_total``, for one shared colour scale."""
    values = [
        v for m in c.models if m.training and m.training.series
        for row in m.training.series.matrix("grad_total") for v in map(log10, row) if v is not None
    ]
    return (min(values), max(values)) if values else None


def figures(c: Comparison) -> list[tuple[str, go.Figure]]:
    """Every figure of the report, in order, with a stable id."""
    out: list[tuple[str, go.Figure]] = [
        ("grad-depth", grad_vs_depth(c)), ("branch-grads", branch_grads(c)),
    ]
    if any(m.has_skips for m in c.models):
        out.append(("branch-ratio", branch_ratio(c)))
    out.append(("response-std", response_std(c)))
    if any(m.training is not None for m in c.models):
        out.append(("loss", loss_curves(c)))
        if any(m.training is not None and m.training.held_out is not None for m in c.models):
            out += [("held-out-loss", held_out_loss(c)), ("held-out-error", held_out_error(c))]
        shared = _log_range(c)
        for i, m in enumerate(c.models):
            for quantity in ("grad_total", "ratio") if m.has_skips else ("grad_total",):
                hm = block_heatmap(m, quantity, shared if quantity == "grad_total" else None)
                if hm is not None:
                    out.append((f"heatmap-{i}-{quantity}", hm))
    return out
