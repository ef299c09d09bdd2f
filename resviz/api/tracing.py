"""One measured forward and backward pass of any target, checked before it runs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from resviz.api.preflight import check_trace_memory
from resviz.api.sizes import SizeLike, trace_shape
from resviz.api.targets import Target, resolve_model
from resviz.errors import ResvizError, quote
from resviz.limits import check_seed
from resviz.measure.static import analyze_spec
from resviz.measure.tracer import LossFn
from resviz.measure.tracer import trace as trace_module
from resviz.records import Trace

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
    image at batch 2); for a network resviz builds (a name, a spec or a :class:`ResNet`) the batch's
    activations are first checked against the device's free memory, on a meta copy of the
    architecture;
    without ``targets`` and ``loss``, cross-entropy against seeded random labels. ``dtype``
    ``bf16``/``fp16`` runs under autocast. ``channels_last`` feeds the batch in NHWC memory format.
    The global RNG state is left untouched.
    """
    check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        found = resolve_model(model_or_name, device, seed)
        amp = resolve_dtype(dtype, found.device)
        shape = None
        if inputs is None:
            shape = trace_shape(found.spec, input_size)
            if found.spec is not None:  # a meta copy of the architecture: the user's module never runs twice
                check_trace_memory(found.label, shape, analyze_spec(found.spec, shape).activation_bytes, found.device)
        return trace_module(
            found.model, inputs, shape, targets, loss, backward, amp, seed,
            channels_last=channels_last, label=found.label,
        )


__all__ = ["resolve_dtype", "trace"]
