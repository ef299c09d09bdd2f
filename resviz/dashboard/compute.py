"""Cached computations behind the dashboard pages; every result is plain, picklable data.

``st.cache_data`` keeps summaries, DOT sources, traces and reports in memory across reruns and
sessions, so switching back to a model already seen costs a cache lookup. Nothing is persisted to
disk: a pickled record from an older resviz could outlive the code that made it, and a restarted
server recomputes a summary in well under a second once PyTorch is imported. Models are built
inside these functions and dropped when they return: a module with hooks never outlives one call and is never
shared between sessions (a ``st.cache_resource`` model would be). A target travels as a plain key
(:attr:`resviz.dashboard.state.Subject.key`): a spec as its dict, so that the cache key is the
architecture itself, not an object identity; a launch-declared model as its factory string, which
:mod:`resviz.api` imports and calls inside the computation. Arguments starting with ``_``
are not hashed by Streamlit; the checkpoint bytes are keyed by their digest instead.

Everything is computed by :mod:`resviz.api` and drawn by :mod:`resviz.render`, imported inside
the functions: the server answers before PyTorch is loaded (:mod:`resviz.dashboard.warmup`).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resviz.errors import ResvizError
from resviz.extras import missing
from resviz.records import SMALL_INPUT_NOTE, Comparison, Reconciliation, Summary, Trace, shape_str
from resviz.spec import ResNetSpec

try:
    import streamlit as st
except ImportError as exc:  # Streamlit comes with the 'dashboard' extra
    raise missing(exc, "dashboard", "the dashboard") from None


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used here, or ``None``; only ``cuda`` can be absent (``auto``
    falls back to the CPU), so torch is imported only when CUDA is asked for."""
    if device != "cuda":
        return None
    from resviz.api import resolve_device

    try:
        resolve_device(device)
    except ResvizError as exc:
        return str(exc)
    return None


TargetKey = dict[str, Any] | str
"""A spec's dict or a factory string (``pkg.mod:factory``): what the cached functions receive."""


def _spec(spec: dict[str, Any]) -> ResNetSpec:
    return ResNetSpec.from_dict(dict(spec))


def _target(key: TargetKey) -> ResNetSpec | str:
    """What :mod:`resviz.api` resolves for ``key``: the spec, or the factory string as it is."""
    return key if isinstance(key, str) else _spec(key)


def torch_loaded() -> bool:
    """Whether this server process has imported PyTorch yet.

    ``streamlit run app.py`` imports it before the server answers (:mod:`resviz.dashboard.warmup`);
    a server started otherwise (an older Streamlit, a test harness) imports it in its first
    summary, and the Architecture page shows
    :func:`resviz.dashboard.fallback.sketch_dot` meanwhile.
    """
    return "torch" in sys.modules


@st.cache_data(show_spinner=False, max_entries=64)
def summary(target: TargetKey, input_shape: tuple[int, ...]) -> Summary:
    """Shapes, parameters and MACs on the meta device (a factory's model is built on the CPU first)."""
    from resviz.api import summarize

    return summarize(_target(target), input_size=input_shape)


def check_input(s: Summary) -> None:
    """An input smaller than the total stride leaves deeper stages computing on padding only:
    the counts are still defined, but the view would mislead, so the dashboard refuses it."""
    for note in s.notes:
        if note.startswith(SMALL_INPUT_NOTE):
            raise ResvizError(f"input {shape_str(s.input_shape[2:])} is too small for {s.model}: {note}")


@st.cache_data(show_spinner=False, max_entries=128)
def diagram_dot(
    target: TargetKey, input_shape: tuple[int, ...], view: str, depth: int | None,
    color_by: str | None, trace_key: tuple[Any, ...] | None = None, _trace: Any = None,
) -> str:
    """DOT source of a diagram view; ``_trace`` adds measurements, keyed by ``trace_key``
    (the arguments it was traced with)."""
    from resviz.render.diagrams import draw

    dig = draw(summary(target, input_shape), view=view, depth=depth, color_by=color_by, trace=_trace)
    return str(dig.source)


def can_render_svg() -> bool:
    """SVG needs Graphviz's ``dot`` on the server (the browser lays out DOT by itself)."""
    return shutil.which("dot") is not None


@st.cache_data(show_spinner=False, max_entries=32)
def svg(dot_source: str) -> bytes:
    import graphviz

    return bytes(graphviz.Source(dot_source).pipe(format="svg"))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@st.cache_data(show_spinner=False, max_entries=8)
def check_checkpoint(target: TargetKey, key: str, name: str, _data: bytes) -> int:
    """Read an uploaded checkpoint safely and check its keys and shapes against the model of
    ``target`` (a spec, or a declared factory's model built without real weights where it allows).

    Nothing is copied into a model; returns the tensor count. Raises a one-line
    :class:`ResvizError` for corrupt files, pickled objects or mismatches.
    """
    from resviz.api import check_checkpoint as check

    return check(_target(target), _data, name)


@st.cache_data(show_spinner=False, max_entries=16)
def trace(
    target: TargetKey, shape: tuple[int, ...], device: str, dtype: str, seed: int,
    ckpt_key: str = "", ckpt_name: str = "", _ckpt: bytes | None = None,
) -> Trace:
    """One forward and backward pass with the hook tracer; returns its plain ``Trace`` record.

    Without a checkpoint the tracer builds the model itself, seeded, on the device it resolves,
    and leaves the global RNG alone. A checkpoint's weights are loaded into a model built on that
    same device first, after the memory pre-flight (:func:`resviz.api.check_trace`). The tracer
    raises one-line errors for unsupported dtypes, for a pass that would not fit in memory (checked
    before anything is built) and for failures of the pass. A factory string is traced as the api
    builds it (seeded); with a checkpoint, its model is built on the device, loaded, then traced
    (the pass's memory is checked by the tracer, after the build).
    """
    from resviz.api import trace as tracer

    if not ckpt_key:
        return tracer(_target(target), input_size=shape, device=device, dtype=dtype, seed=seed)
    if _ckpt is None:
        raise ResvizError(f"checkpoint {ckpt_name} is no longer uploaded; upload it again")
    from resviz.api import build_model, check_trace, load_checkpoint, resolve_device, resolve_model

    if isinstance(target, str):
        model = load_checkpoint(resolve_model(target, device, seed).model, _ckpt, ckpt_name)
        return tracer(model, input_size=shape, device=device, dtype=dtype, seed=seed)
    check_trace(_spec(target), shape, device)  # before the checkpoint's model is built
    model = load_checkpoint(build_model(_spec(target), device=resolve_device(device)), _ckpt, ckpt_name)
    return tracer(model, input_size=shape, device=device, dtype=dtype, seed=seed)


@st.cache_data(show_spinner=False, max_entries=16)
def reconciliation(target: TargetKey, input_shape: tuple[int, ...]) -> Reconciliation:
    """resviz's counts against fvcore, torchinfo and FlopCounterMode (one real CPU forward).

    A factory's model is built by :func:`resviz.api.reconcile` (on the CPU, seed 0) and dropped on return.
    """
    from resviz.api import reconcile

    return reconcile(_target(target), input_size=input_shape)


@st.cache_data(show_spinner=False, max_entries=8)
def _stored_comparison(key: tuple[Any, ...], _value: ShownComparison | None = None) -> ShownComparison:
    """The cache of finished comparisons: a miss raises (and raising stores nothing).

    Training runs outside this function so that its progress bar is not recorded by
    ``st.cache_data`` and replayed on later hits; the finished plain result is then stored here.
    """
    if _value is None:
        raise KeyError(key)
    return _value


@dataclass(frozen=True)
class ShownComparison:
    """A finished comparison as the dashboard keeps it: the report's HTML and the record behind it."""

    html: str
    result: Comparison


def comparison(
    names: tuple[str, ...], steps: int, batch: int, input_size: tuple[int, ...], seed: int, device: str,
    progress: Callable[[int, int, str], None] | None = None,
) -> ShownComparison:
    """Trace each model at initialisation, train ``steps`` steps, and build the HTML report."""
    key = (names, steps, batch, input_size, seed, device)
    try:
        return _stored_comparison(key)
    except KeyError:
        pass
    from resviz.api import compare
    from resviz.render.report import render_html

    result = compare(list(names), steps=steps, batch=batch, input_size=input_size, seed=seed,
                     device=device, progress=progress)
    return _stored_comparison(key, ShownComparison(render_html(result), result))
