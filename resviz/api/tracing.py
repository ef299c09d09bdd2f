"""One measured forward and backward pass of any target, checked before it runs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from resviz.api.factories import is_factory
from resviz.api.preflight import check_need
from resviz.api.sizes import SizeLike, trace_shape
from resviz.api.targets import Target, label_of, measuring_device, resolve_model, resolve_spec, spec_of
from resviz.errors import ResvizError, quote
from resviz.limits import check_seed
from resviz.measure.memory import MemoryNeed, module_need, trace_need
from resviz.measure.static import analyze_spec
from resviz.measure.tracer import LossFn
from resviz.measure.tracer import trace as trace_module
from resviz.records import Shape, Trace
from resviz.spec import ResNetSpec

_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for plain float32. fp16 autocast needs CUDA."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        dt = dtype
    else:
        key = str(dtype).strip().lower().removeprefix("torch.")
        if key not in _DTYPES:
            raise ResvizError(f"unknown dtype {quote(dtype)}: use fp32, bf16 or fp16")
        dt = _DTYPES[key]
    if dt == torch.float32:
        return None
    if dt not in (torch.bfloat16, torch.float16):
        raise ResvizError(f"unsupported dtype {dt}: use fp32, bf16 or fp16")
    if dt == torch.float16 and device.type != "cuda":
        raise ResvizError("fp16 autocast needs a CUDA device; use bf16 on CPU")
    return dt


def trace_memory(target: Target, shape: Shape) -> MemoryNeed:
    """The estimated memory of a trace of ``target`` at ``shape``
    (:mod:`resviz.measure.memory`). A name or spec is counted on a meta copy of the architecture,
    weights included (they are not built yet); a module already holds its weights, so they are
    left out: resviz's own networks are counted from their spec, any other module from a meta copy
    of it, so the user's module never runs twice and its hooks never fire."""
    if isinstance(target, nn.Module):
        spec = spec_of(target)
        if spec is None:
            return module_need(target, shape, label_of(target))
        return trace_need(analyze_spec(spec, shape), weights_exist=True)
    return trace_need(analyze_spec(resolve_spec(target), shape))


def check_trace(
    target: Target, input_size: SizeLike | None = None, device: str | torch.device = "auto",
) -> None:
    """The pre-flight of :func:`trace` on its own: a one-line :class:`ResvizError` when the trace of
    ``target`` at ``input_size`` would not fit in the memory available on ``device``.

    For callers that allocate before tracing (the dashboard loads a checkpoint into a new model):
    they ask first, before anything is built.
    """
    if isinstance(target, nn.Module):
        params = list(target.parameters())
        dev = params[0].device if params else torch.device("cpu")
        spec = spec_of(target)
    else:
        target = spec = resolve_spec(target)
        dev = measuring_device(device)
    shape = trace_shape(spec, input_size)
    check_pass(target, shape, dev)


def check_pass(
    target: nn.Module | ResNetSpec, shape: Shape | None, device: torch.device, backward: bool = True,
    what: str = "a trace",
) -> None:
    """Refuse a real pass of ``target`` at ``shape`` (``what`` names it in the message) when it
    would not fit; without a backward pass no gradient is allocated."""
    if shape is not None:
        label = target.name if isinstance(target, ResNetSpec) else label_of(target)
        need = trace_memory(target, shape)
        check_need(f"{what} of {label}", need if backward else need._replace(gradients=0), device, shape)


def _shape_of(inputs: Tensor | None, spec: Any, input_size: SizeLike | None) -> Shape | None:
    """The batch shape a trace will run at, or ``None`` when the tracer is about to refuse the inputs."""
    if inputs is None:
        return trace_shape(spec, input_size)
    if isinstance(inputs, Tensor) and inputs.dim() == 4 and inputs.numel() > 0:
        return tuple(inputs.shape)
    return None


def trace(
    model_or_name: Target,
    inputs: Tensor | None = None,
    input_size: SizeLike | None = None,
    targets: Any = None,
    loss: LossFn | None = None,
    backward: bool = True,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    seed: int = 0,
    *,
    channels_last: bool = False,
) -> Trace:
    """Run one forward (and backward) pass with hooks and return plain statistics.

    ``model_or_name`` is a preset name, a :class:`~resviz.spec.ResNetSpec` (built with weights
    seeded by ``seed``) or any ``nn.Module`` (traced where it lives, left exactly as it was).
    Without ``inputs``, a seeded N(0, 1) batch of ``input_size`` is used (default: the model's
    image at batch 2). Before anything is built or allocated, the pass's memory (weights,
    gradients, activations, inputs, the tracer's buffers) is estimated on the meta device and
    checked against what is available (:func:`check_trace`, :mod:`resviz.api.preflight`);
    without ``targets`` and ``loss``, cross-entropy against seeded random labels. ``dtype``
    ``bf16``/``fp16`` runs under autocast. ``channels_last`` feeds the batch in NHWC memory format.
    The global RNG state is left untouched.
    """
    check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        if isinstance(model_or_name, nn.Module) or is_factory(model_or_name):
            found = resolve_model(model_or_name, device, seed)
            amp = resolve_dtype(dtype, found.device)
            check_pass(found.model, _shape_of(inputs, found.spec, input_size), found.device, backward)
        else:  # checked before the network is built
            spec = resolve_spec(model_or_name)
            dev = measuring_device(device)
            amp = resolve_dtype(dtype, dev)
            check_pass(spec, _shape_of(inputs, spec, input_size), dev, backward)
            found = resolve_model(spec, dev, seed)
        shape = trace_shape(found.spec, input_size) if inputs is None else None
        return trace_module(
            found.model, inputs, shape, targets, loss, backward, amp, seed,
            channels_last=channels_last, label=found.label,
        )


__all__ = ["check_pass", "check_trace", "resolve_dtype", "trace", "trace_memory"]
