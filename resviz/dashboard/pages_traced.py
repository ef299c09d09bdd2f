"""Pages that need a real forward and backward pass: Activations and Gradient flow.

A trace runs only when one of these pages (or the gradient-flow diagram) is opened, at the
sidebar's trace settings, and is cached as a plain ``Trace`` record. The default settings, a batch
of 2 at 64x64, keep it short: under a second for ResNet-50 on two CPU cores (bench/RESULTS.md).
A trace that would not fit in memory is refused before anything is built
(:func:`resviz.api.trace` checks it).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from resviz.dashboard import compute
from resviz.dashboard.state import PageContext, Subject
from resviz.errors import ResvizError
from resviz.extras import missing
from resviz.records import Trace, shape_str
from resviz.render import figures, theme

try:
    import streamlit as st
except ImportError as exc:  # Streamlit comes with the 'dashboard' extra
    raise missing(exc, "dashboard", "the dashboard") from None

LAYER_KINDS: tuple[str, ...] = ("conv", "norm", "act", "pool", "linear", "add", "other")
#: Session-state key: digests of the traces this session has run (see :func:`trace_at_hand`).
_TRACED = "_resviz_traced"


class TraceKey(NamedTuple):
    """The hashed arguments of :func:`compute.trace`; also the cache key of traced diagrams."""

    target: dict[str, Any] | str
    shape: tuple[int, ...]
    device: str
    dtype: str
    seed: int
    ckpt_key: str
    ckpt_name: str


def trace_args(ctx: PageContext, subject: Subject, with_ckpt: bool = True) -> TraceKey:
    """The trace settings of the sidebar applied to ``subject``."""
    v = ctx.view
    ck = ctx.ckpt if with_ckpt else None
    return TraceKey(subject.key, v.trace_shape(subject.in_channels), v.device, v.dtype, int(v.seed),
                    ck.key if ck else "", ck.name if ck else "")


def _key_digest(k: TraceKey) -> str:
    return compute.digest(repr(tuple(k)).encode())


def trace_at_hand(ctx: PageContext, subject: Subject, with_ckpt: bool = True) -> bool:
    """Whether this session already ran the trace of ``subject`` at the sidebar's settings, so that
    using it is normally a ``st.cache_data`` lookup (an evicted trace reruns with its spinner)."""
    return _key_digest(trace_args(ctx, subject, with_ckpt)) in st.session_state.get(_TRACED, ())


def run_trace(ctx: PageContext, subject: Subject, with_ckpt: bool = True) -> Trace | None:
    """The cached trace of ``subject``, with a spinner while it runs; ``None`` after showing an error."""
    k = trace_args(ctx, subject, with_ckpt)
    ck = ctx.ckpt if with_ckpt else None
    try:
        with st.spinner(f"Tracing {subject.name}: forward and backward pass at {shape_str(k.shape)}..."):
            tr = compute.trace(k.target, k.shape, k.device, k.dtype, k.seed, k.ckpt_key, k.ckpt_name,
                               _ckpt=ck.data if ck else None)
    except ResvizError as exc:
        st.error(str(exc))
        return None
    st.session_state.setdefault(_TRACED, set()).add(_key_digest(k))
    return tr


def _caption(tr: Trace, ckpt: bool) -> str:
    loss = f", loss {tr.loss:.4g}" if tr.loss is not None else ""
    weights = "uploaded checkpoint" if ckpt else f"random initialisation (seed {tr.seed})"
    return (f"{tr.model} traced on {tr.device} in {tr.dtype} at {shape_str(tr.input_shape)}, "
            f"{weights}{loss}.")


def activations(ctx: PageContext) -> None:
    """Output statistics of every layer against depth, and one layer's histogram."""
    import pandas as pd

    tr = run_trace(ctx, ctx.subject)
    if tr is None:
        return
    st.caption(_caption(tr, ctx.ckpt is not None))
    bad = [lr.name for lr in tr.layers if lr.nan_count or lr.inf_count]
    if bad:
        st.warning(f"{len(bad)} layer(s) produce NaN or Inf values, first {bad[0]}.")
    c1, c2 = st.columns(2)
    stats = c1.multiselect("Statistics", figures.ACTIVATION_STATS, default=["std", "rms"], key="act_stats")
    present = [k for k in LAYER_KINDS if any(theme.layer_kind(lr.type) == k for lr in tr.layers)]
    kinds = c2.multiselect("Layer kinds", present, key="act_kinds", placeholder="all kinds")
    if stats:
        st.plotly_chart(figures.activation_depth(tr.layers, stats, kinds or None), key="act_depth")
    names = [lr.name for lr in tr.layers]
    default = next((i for i, n in enumerate(names) if n.endswith("relu")), 0)
    chosen = st.selectbox("Histogram of layer", names, index=default, key="act_layer")
    st.plotly_chart(figures.activation_histogram(tr.layer(chosen)), key="act_hist")
    st.dataframe(
        pd.DataFrame([{"layer": lr.name, "type": lr.type, "output": shape_str(lr.output_shape),
                       "mean": lr.mean, "std": lr.std, "min": lr.min, "max": lr.max, "rms": lr.rms,
                       "zeros": lr.zero_fraction, "NaN": lr.nan_count, "Inf": lr.inf_count}
                      for lr in tr.layers]),
        hide_index=True, width="stretch", height=360,
    )


def gradient_flow(ctx: PageContext) -> None:
    """Gradient norm at each block input through the main and skip paths, with the plain twin
    (resviz's models only: a model built by the user's factory has no spec to take the shortcuts out of)."""
    import pandas as pd

    subject = ctx.subject
    tr = run_trace(ctx, subject)
    if tr is None:
        return
    st.caption(_caption(tr, ctx.ckpt is not None))
    if not tr.blocks:
        st.info(f"{subject.name} has no residual blocks to measure.")
        return
    if all(b.grad_total is None for b in tr.blocks):
        st.info("This trace ran without a backward pass, so there are no gradients to show.")
        return
    plain, plain_name = plain_twin(ctx)
    fig = figures.gradient_flow(tr.blocks, plain.blocks if plain is not None else None, model=subject.name,
                                plain_model=plain_name)
    st.plotly_chart(fig, key="grad_fig")
    st.dataframe(
        pd.DataFrame([{"block": b.name, "stage": b.stage, "shortcut": b.shortcut, "grad main": b.grad_main,
                       "grad skip": b.grad_skip, "grad total": b.grad_total,
                       "skip share": b.skip_share, "main/skip RMS": _finite(b.rms_ratio)}
                      for b in tr.blocks]),
        hide_index=True, width="stretch",
    )


def plain_twin(ctx: PageContext) -> tuple[Trace | None, str]:
    """The plain twin's trace when the user asks for it (on by default), and its name; a model
    without a spec (the user's own) or without shortcuts has no twin, and no toggle is shown."""
    spec = ctx.spec
    if spec is None or not spec.has_skips:
        return None, ""
    twin = spec.plain()
    if not st.toggle("Overlay the plain twin (same layers, no shortcuts)", value=True, key="grad_plain"):
        return None, twin.name
    sub = Subject(twin.to_dict(), twin.name, twin.in_channels, twin)
    plain = run_trace(ctx, sub, with_ckpt=False)
    if plain is not None and ctx.ckpt is not None:
        st.caption(f"{twin.name} starts from random weights: the checkpoint belongs to {spec.name}.")
    return plain, twin.name


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None
