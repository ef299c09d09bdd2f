"""Plotly figures of a model's cost, activations and gradient flow.

Renderers take records (a :class:`~resviz.records.Summary`, or a trace's per-layer and
per-block statistics) and return a ``plotly.graph_objects.Figure``; they never show or write
anything, so the dashboard, the HTML report and a notebook can all use them. Colours come from
:mod:`resviz.render.theme`, the same palette as the Graphviz diagrams, so a conv layer or a skip
path has one colour everywhere.

Trace statistics come as the records :class:`~resviz.records.LayerStats` and
:class:`~resviz.records.BlockStats`, read by attribute name (``std``, ``grad_main`` ...).
"""

from __future__ import annotations

from collections.abc import Sequence

from resviz.extras import missing
from resviz.records import BlockStats, LayerStats, Summary
from resviz.render import theme
from resviz.render.format import human
from resviz.render.plot_style import finite, layout, positive

try:
    import plotly.graph_objects as go
except ImportError as exc:  # Plotly comes with the 'reports' extra
    raise missing(exc, "reports", "Plotly figures") from None

METRIC_LABELS: dict[str, str] = {"params": "parameters", "macs": "MACs"}
ACTIVATION_STATS: tuple[str, ...] = ("std", "rms", "mean", "min", "max", "zero_fraction")


# ---------------------------------------------------------------------------------------- cost
def cost_hierarchy(summary: Summary, metric: str = "macs", kind: str = "treemap") -> go.Figure:
    """Model -> stage -> block -> layer, sized by ``metric``; leaves coloured by layer kind.

    A treemap answers "where do the parameters (or MACs) go" at a glance: in ResNet-50 most
    parameters sit in conv5_x while the MACs spread evenly over the four stages (He et al. 2015,
    Table 1 keeps the per-stage cost roughly constant by halving resolution as width doubles).
    Layers with a zero count (ReLU, pooling, additions) are left out: they have no area.
    ``metric`` is ``macs`` or ``params``; ``kind`` is ``treemap`` or ``sunburst``.
    """
    _check(metric, METRIC_LABELS, "metric")
    _check(kind, ("treemap", "sunburst"), "chart kind")
    ids: list[str] = [summary.model]
    labels: list[str] = [summary.model]
    parents: list[str] = [""]
    values: list[int] = [int(getattr(summary, f"total_{metric}"))]
    colors: list[str] = ["#FFFFFF"]
    seen: set[str] = {summary.model}

    def add(node: str, label: str, parent: str, value: int, color: str) -> None:
        if node not in seen:
            seen.add(node)
            ids.append(node)
            labels.append(label)
            parents.append(parent)
            values.append(value)
            colors.append(color)

    stage_totals = {s.name: s.params if metric == "params" else s.macs for s in summary.stages}
    block_totals = {b.name: b.params if metric == "params" else b.macs for b in summary.blocks}
    for layer in summary.layers:
        value = int(getattr(layer, metric))
        if value <= 0:
            continue
        stage = layer.stage or "other"
        stage_id = f"{summary.model}/{stage}"
        add(stage_id, stage, summary.model, int(stage_totals.get(stage, 0)), "#F7F7F7")
        parent = stage_id
        if layer.block:
            parent = f"{stage_id}/{layer.block}"
            add(parent, layer.block, stage_id, int(block_totals.get(layer.block, 0)), "#EFEFEF")
        add(f"{parent}/{layer.name}", layer.name.rsplit(".", 1)[-1], parent, value,
            theme.LAYER_COLORS[theme.layer_kind(layer.type)])
    trace_cls = go.Treemap if kind == "treemap" else go.Sunburst
    hover = "<b>%{id}</b><br>%{value:,} " + METRIC_LABELS[metric] + "<br>%{percentRoot:.1%} of model"
    fig = go.Figure(
        trace_cls(
            ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
            marker={"colors": colors, "line": {"color": "#888888", "width": 0.5}},
            hovertemplate=hover + "<extra></extra>", maxdepth=3,
        )
    )
    return layout(fig, f"{summary.model}: {METRIC_LABELS[metric]} by stage, block and layer",
                   height=520)


def cost_bars(summary: Summary, metric: str = "macs", level: str = "stage") -> go.Figure:
    """Bars of ``metric`` per stage (He et al. 2015, Table 1 rows) or per residual block."""
    _check(metric, METRIC_LABELS, "metric")
    _check(level, ("stage", "block"), "level")
    if level == "stage":
        names = [s.name for s in summary.stages]
        vals = [s.params if metric == "params" else s.macs for s in summary.stages]
        color = theme.MODEL_COLORS[0]
    else:
        names = [b.name for b in summary.blocks]
        vals = [b.params if metric == "params" else b.macs for b in summary.blocks]
        color = theme.LAYER_COLORS["conv"]
    fig = go.Figure(
        go.Bar(
            x=names, y=vals, marker_color=color, text=[human(v) for v in vals],
            textposition="outside" if level == "stage" else "none",
            hovertemplate="%{x}: %{y:,}<extra></extra>",
        )
    )
    return layout(fig, f"{METRIC_LABELS[metric]} per {level}",
                   yaxis_title=METRIC_LABELS[metric], xaxis_title=level, height=380)


# --------------------------------------------------------------------------------- activations
def activation_depth(
    layers: Sequence[LayerStats], stats: Sequence[str] = ("std", "rms"),
    kinds: Sequence[str] | None = None,
) -> go.Figure:
    """Activation statistics against depth (execution order), one line per statistic.

    Markers take the layer-kind colour, so the saw-tooth of BatchNorm resetting the scale and the
    growth of the residual stream across additions (He et al. 2016, Sec. 3) read directly.
    ``kinds`` keeps only some layer kinds (``conv``, ``norm``, ``act``, ``add`` ...).
    """
    rows = [
        (i, layer) for i, layer in enumerate(layers)
        if kinds is None or theme.layer_kind(layer.type) in kinds
    ]
    fig = go.Figure()
    dashes = ("solid", "dot", "dash", "dashdot", "longdash", "longdashdot")
    for n, stat in enumerate(stats):
        fig.add_trace(
            go.Scatter(
                x=[i for i, _ in rows], y=[finite(getattr(layer, stat)) for _, layer in rows],
                mode="lines+markers", name=stat,
                line={"color": theme.model_color(n), "dash": dashes[n % 6]},
                marker={"color": [theme.LAYER_COLORS[theme.layer_kind(layer.type)] for _, layer in rows],
                        "line": {"color": "#555555", "width": 0.5}, "size": 6},
                customdata=[[layer.name, layer.type] for _, layer in rows],
                hovertemplate="%{customdata[0]} (%{customdata[1]})<br>" + stat + " = %{y:.4g}<extra></extra>",
            )
        )
    return layout(fig, "activation statistics against depth", xaxis_title="layer (execution order)",
                   yaxis_title="value", height=420, legend={"orientation": "h", "y": 1.08, "x": 1,
                                                            "xanchor": "right"})


def activation_histogram(layer: LayerStats) -> go.Figure:
    """The traced histogram of one layer's output values (bars span the recorded bin edges)."""
    edges = [float(e) for e in layer.hist_edges]
    counts = [int(c) for c in layer.hist_counts]
    n = min(len(counts), max(len(edges) - 1, 0))
    centers = [(edges[i] + edges[i + 1]) / 2 for i in range(n)]
    widths = [edges[i + 1] - edges[i] for i in range(n)]
    color = theme.LAYER_COLORS[theme.layer_kind(layer.type)]
    fig = go.Figure(
        go.Bar(x=centers, y=counts[:n], width=widths, marker={"color": color, "line": {"color": "#555555",
                                                                                         "width": 0.5}},
               hovertemplate="[%{x:.3g}]: %{y:,}<extra></extra>")
    )
    return layout(fig, f"{layer.name} ({layer.type}): output values", xaxis_title="value",
                   yaxis_title="count", bargap=0, height=360)


# ------------------------------------------------------------------------------ gradient flow
def gradient_flow(
    blocks: Sequence[BlockStats], plain: Sequence[BlockStats] | None = None,
    model: str = "", plain_model: str = "plain twin",
) -> go.Figure:
    """Gradient norm reaching each block's input through the main and the skip path, log scale.

    At a block input x, dL/dx = main-path part + skip-path part; with identity shortcuts the skip
    part carries the gradient of every later block unchanged (He et al. 2016, Eq. 5), which is why
    it stays flat while the main part varies. The optional ``plain`` overlay is the plain twin's
    total gradient per block: without shortcuts it shrinks towards the input (He et al. 2015,
    Sec. 4.1). Zeros, missing (no backward pass) and non-finite values are left as gaps, since a
    log axis cannot show them.
    """
    names = [b.name for b in blocks]
    fig = go.Figure()
    series = (
        ("main path", "grad_main", theme.MAIN_COLOR, "solid", "circle"),
        ("skip path", "grad_skip", theme.SKIP_COLOR, "dash", "diamond"),
        ("total", "grad_total", theme.TOTAL_COLOR, "dot", "x"),
    )
    for label, attr, color, dash, symbol in series:
        fig.add_trace(
            go.Scatter(
                x=names, y=[positive(getattr(b, attr)) for b in blocks], name=label,
                mode="lines+markers", line={"color": color, "dash": dash},
                marker={"symbol": symbol, "size": 7},
                hovertemplate="%{x}: %{y:.3e}<extra>" + label + "</extra>",
            )
        )
    if plain:
        by_name = {b.name: b for b in plain}
        xs = [n for n in names if n in by_name] or [b.name for b in plain]
        fig.add_trace(
            go.Scatter(
                x=xs, y=[positive(by_name[n].grad_total) for n in xs], name=f"{plain_model}: total",
                mode="lines+markers", line={"color": "#999999", "width": 3},
                marker={"symbol": "square", "size": 7},
                hovertemplate="%{x}: %{y:.3e}<extra>" + plain_model + "</extra>",
            )
        )
    title = f"{model}: gradient norm at each block input" if model else "gradient norm at each block input"
    return layout(fig, title, xaxis_title="block (input side first)", yaxis_title="‖dL/dx‖ (log)",
                   yaxis_type="log", height=440,
                   legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"})


def _check(value: str, allowed: Sequence[str] | dict[str, str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(allowed)}")
