"""Pages that need only the static analysis: Architecture, Layers and Cost.

They read shapes, parameters and MACs from the meta-device summary, so they render instantly for
any preset, including the default ResNet-50, and never wait for a trace.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from resviz.dashboard import compute
from resviz.dashboard.state import PageContext, Subject
from resviz.errors import ResvizError
from resviz.extras import missing
from resviz.records import Summary, shape_str
from resviz.render import figures
from resviz.render.diagrams import VIEWS, check_view, color_by_key, needs_trace
from resviz.render.format import human
from resviz.render.tables import fold, summary_json

try:
    import streamlit as st
except ImportError as exc:  # Streamlit comes with the 'dashboard' extra
    raise missing(exc, "dashboard", "the dashboard") from None

if TYPE_CHECKING:
    import pandas as pd


def headline(s: Summary, subject: Subject) -> None:
    """The numbers people quote about a network, per image."""
    cols = st.columns(6)
    cols[0].metric("parameters", human(s.total_params), help=f"{s.total_params:,}")
    cols[1].metric("MACs", human(s.total_macs), help=f"{s.total_macs:,} multiply-accumulates per image")
    cols[2].metric("FLOPs (2 x MACs)", human(s.total_flops))
    if subject.spec is not None:
        cols[3].metric("depth", str(subject.spec.depth), help="weighted layers as the papers count them")
    else:
        from resviz.api import weighted_depth  # PyTorch is loaded by now: the summary needed it

        cols[3].metric("depth", str(weighted_depth(s)),
                       help="convolution and linear layers outside the shortcuts, as found in the model's "
                            "computation (the papers' count for ResNets; attention's matrix products have no "
                            "weights and are not counted; parallel branches each add theirs)")
    cols[4].metric("residual blocks", str(len(s.blocks)),
                   help="additions out = F(x) + S(x) found in the computation")
    cols[5].metric("activations", human(s.activation_bytes) + "B", help="output memory of every layer")


#: Colour-by choices and their labels; ``None`` colours nodes by layer kind.
COLOR_LABELS: dict[str | None, str] = {
    None: "layer kind", "macs": "MACs", "params": "parameters",
    "std": "activation std (needs a trace)", "grad-ratio": "main/skip gradient ratio (needs a trace)",
}


def color_choices(subject: Subject, s: Summary) -> list[str | None]:
    """What the diagrams can colour by: counts, and measurements from a trace; a plain network has
    no skip path, so it has no main/skip gradient ratio to show (for a model resviz did not build,
    one without residual blocks found in its computation)."""
    skips = subject.spec.has_skips if subject.spec is not None else bool(s.blocks)
    return [None, "macs", "params", "std", *(["grad-ratio"] if skips else [])]


def architecture(ctx: PageContext) -> None:
    """Graphviz views, laid out by the browser; DOT always downloadable, SVG when ``dot`` exists.

    Colouring by a measurement (activation std, gradient ratio) and the gradient-flow view need a
    trace: one already run in this session is used at once; otherwise the page draws the
    uncoloured diagram and runs the trace only when asked, with a spinner, because a trace of a
    large model at a large trace size takes seconds.
    """
    from resviz.dashboard import pages_traced

    subject, s = ctx.subject, ctx.summary
    headline(s, subject)
    c1, c2, c3 = st.columns([2, 2, 1])
    chosen = c1.selectbox("Diagram view", VIEWS, key="arch_view")
    color = c2.selectbox("Color by", color_choices(subject, s), key="arch_color",
                         format_func=lambda c: COLOR_LABELS.get(c, str(c)),
                         help="fill each node by its count or measurement (log scale except std)")
    depth = c3.number_input("Depth", 1, 4, 2, key="arch_depth", help="1 stages, 2 blocks, 3+ layers") \
        if chosen == "layers" else None
    trace_key: tuple[Any, ...] | None = None
    tr = None
    if needs_trace(check_view(chosen), color_by_key(color)):
        if chosen != "gradient-flow" and not pages_traced.trace_at_hand(ctx, subject):
            shape = shape_str(ctx.view.trace_shape(subject.in_channels))
            st.info(f"Colouring by {COLOR_LABELS[color].split(' (')[0]} needs a trace of {subject.name}: one "
                    f"forward and backward pass at {shape} (Trace settings in the sidebar).")
            if not st.button("Run trace", key="arch_trace", type="primary"):
                color = None
        if chosen == "gradient-flow" or color is not None:
            tr = pages_traced.run_trace(ctx, subject)
            if tr is None:
                return
            trace_key = tuple(pages_traced.trace_args(ctx, subject))
    try:
        with st.spinner("Drawing..."):
            dot = compute.diagram_dot(subject.key, s.input_shape, chosen, depth, color, trace_key, tr)
    except ResvizError as exc:
        st.error(str(exc))
        return
    st.graphviz_chart(dot, width="stretch")
    c1, c2, _ = st.columns([1, 1, 3])
    base = f"{file_stem(subject)}-{chosen}" + (f"-{color}" if color else "")
    c1.download_button("Download DOT", dot, file_name=f"{base}.dot", mime="text/vnd.graphviz",
                       key="dl_dot", on_click="ignore")
    if compute.can_render_svg():
        c2.download_button("Download SVG", lambda: compute.svg(dot), file_name=f"{base}.svg",
                           mime="image/svg+xml", key="dl_svg", on_click="ignore")
    for note in s.notes:
        st.caption(note)


def file_stem(subject: Subject) -> str:
    """A download's file name start: the model's name, a factory's ``:`` and ``/`` made safe."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in subject.name)


def layer_frame(s: Summary, depth: int | None) -> pd.DataFrame:
    """One row per layer (or per folded group at ``depth``), numbers left numeric for sorting."""
    import pandas as pd

    if depth:
        rows: list[dict[str, Any]] = [
            {"name": r.name, "type": r.type, "output": shape_str(r.output_shape), "params": r.params,
             "MACs": r.macs, "elementwise": r.elementwise, "activation bytes": r.activation_bytes}
            for r in fold(s.layers, depth)
        ]
    else:
        rows = [
            {"name": lr.name, "type": lr.type, "stage": lr.stage, "block": lr.block, "branch": lr.branch,
             "input": shape_str(lr.input_shape), "output": shape_str(lr.output_shape), "params": lr.params,
             "MACs": lr.macs, "elementwise": lr.elementwise, "activation bytes": lr.activation_bytes}
            for lr in s.layers
        ]
    return pd.DataFrame(rows)


def layers(ctx: PageContext) -> None:
    """A sortable (click a header), filterable layer table with CSV and JSON downloads."""
    stem, s = file_stem(ctx.subject), ctx.summary
    c1, c2, c3 = st.columns([2, 2, 1])
    text = c1.text_input("Filter by name", key="layers_filter", placeholder="e.g. layer3 or downsample")
    fold_to = c3.selectbox("Fold to depth", [None, 1, 2, 3], key="layers_depth",
                           format_func=lambda d: "every layer" if d is None else str(d))
    frame = layer_frame(s, fold_to)
    rows = len(frame)
    types = sorted(frame["type"].unique())
    picked = c2.multiselect("Layer types", types, key="layers_types", placeholder="all types")
    if text:
        frame = frame[frame["name"].str.contains(text, case=False, regex=False)]
    if picked:
        frame = frame[frame["type"].isin(picked)]
    st.caption(f"{len(frame)} of {rows} rows; "
               f"counts per image at {shape_str(s.input_shape)}; click a column header to sort.")
    st.dataframe(
        frame, hide_index=True, width="stretch", height=520,
        column_config={k: st.column_config.NumberColumn(k, format="localized")
                       for k in ("params", "MACs", "elementwise", "activation bytes")},
    )
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Download CSV", lambda: frame.to_csv(index=False), file_name=f"{stem}-layers.csv",
                       mime="text/csv", key="dl_csv", on_click="ignore")
    c2.download_button("Download JSON", lambda: json.dumps(summary_json(s, fold_to), indent=2),
                       file_name=f"{stem}-summary.json", mime="application/json", key="dl_json",
                       on_click="ignore")


def cost(ctx: PageContext) -> None:
    """Where the parameters and MACs go, and how other FLOP counters disagree, and why."""
    import pandas as pd

    s = ctx.summary
    headline(s, ctx.subject)
    c1, c2 = st.columns(2)
    metric = c1.radio("Measure", ["macs", "params"], key="cost_metric", horizontal=True,
                      format_func=lambda m: figures.METRIC_LABELS[m])
    kind = c2.radio("Chart", ["treemap", "sunburst"], key="cost_kind", horizontal=True)
    st.plotly_chart(figures.cost_hierarchy(s, metric, kind), key="cost_tree")
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(figures.cost_bars(s, metric, "stage"), key="cost_stage")
    with c2:
        st.plotly_chart(figures.cost_bars(s, metric, "block"), key="cost_block")
    st.dataframe(
        pd.DataFrame([{"stage": x.name, "output": shape_str(x.output_shape[1:]), "blocks": x.num_blocks,
                       "params": x.params, "MACs": x.macs, "elementwise": x.elementwise,
                       "receptive field": x.receptive_field, "stride": x.jump} for x in s.stages]),
        hide_index=True, width="stretch",
    )
    reconciliation(ctx.subject, s)


def reconciliation(subject: Subject, s: Summary) -> None:
    import pandas as pd

    st.subheader("FLOP reconciliation")
    st.caption("resviz counts MACs of convolutions and linear layers; fvcore, torchinfo and "
               "FlopCounterMode count differently. This runs one real forward pass on the CPU"
               + (" of the model your factory builds (seed 0)." if subject.yours else "."))
    if not st.toggle("Reconcile with fvcore, torchinfo and FlopCounterMode", key="cost_reconcile"):
        return
    try:
        with st.spinner(f"Counting {subject.name} with four counters..."):
            rec = compute.reconciliation(subject.key, s.input_shape)
    except ResvizError as exc:
        st.error(str(exc))
        return
    st.dataframe(pd.DataFrame([dataclasses.asdict(r) for r in rec.rows]), hide_index=True, width="stretch")
    st.caption("totals: " + ", ".join(f"{k} {human(v)}" for k, v in rec.totals.items()))
