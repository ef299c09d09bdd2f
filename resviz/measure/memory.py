"""The memory a measured pass needs, estimated on the meta device before anything is allocated.

A process that runs out of host memory is killed by the kernel without a word, so every entry point
that runs a real pass asks first (:mod:`resviz.api.preflight` decides; this module only counts).
The parts, each in bytes:

* weights: every parameter and buffer (a BatchNorm's running statistics);
* gradients: one tensor the size of each trainable parameter, filled by the backward pass;
* optimizer: SGD's momentum buffers when training, again one per trainable parameter;
* activations: :data:`ACTIVATION_SHARE` of the sum of every leaf module's output at the batch
  (``Summary.activation_bytes``). Autograd keeps only part of these for the backward pass (the
  saved tensors), but on the CPU the measured peak of a pass sits near the sum of all outputs,
  not near the saved tensors (which fall well short of it): the outputs freed in the forward
  pass and the gradients in flight in the backward pass keep memory in the allocator meanwhile
  (bench/memory.py measures both against the peak; bench/RESULTS.md, Memory pre-flight). Models
  trained in turn, as a comparison does, peak higher still: :data:`TRAINING_PASSES`;
* inputs: the batches themselves and their labels;
* data: what a comparison's data set holds whatever the batch (the class templates of synthetic
  data, every image of a real data set at the input size): it grows with the image, not the batch;
* tracer: the tracer's own buffers (one statistics row per layer, the CPU reduction's chunk and
  histogram sample of a group of layers, the copy of every buffer it restores on exit). The
  branch captures keep a few scalars per block: negligible, not counted.

Everything is read from a :class:`~resviz.records.Summary` (shapes and parameter counts from the
meta pass), so an estimate costs no more than the summary, and nothing grows with the batch.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from resviz.measure.static import analyze_module
from resviz.measure.stats import CHUNK, HIST_SAMPLE, ROW
from resviz.measure.structure import fingerprint
from resviz.records import Shape, Summary

FLOAT_BYTES = 4
LABEL_BYTES = 8  # int64 class indices
ACTIVATION_SHARE = 0.9
"""The share of the leaf outputs' bytes that the activation part counts: the centre of the range the
peak less the other parts was measured in, over resviz's presets (bench/RESULTS.md, Memory
pre-flight)."""
TRAINING_PASSES = 2
"""Activation footprints a comparison's training counts, of its largest model: models trained in
turn peak well above the first one's pass alone (bench/RESULTS.md, Memory pre-flight), the
allocator not handing one model's freed memory to the next model's differently sized tensors."""
BATCH_COPIES = 2
"""Batches a comparison holds while it makes one (the batch and the noise or gathered images it is
made from); one batch is made at a time (:class:`resviz.studies.data.Batches`)."""
GROUP_LAYERS = 16
"""Layers reduced together at most (the leaves of one block); their histogram samples coexist."""


class MemoryNeed(NamedTuple):
    """Bytes a pass needs, by part; ``batch`` is the batch the per-sample parts were counted at."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    inputs: int
    tracer: int
    batch: int
    data: int = 0

    @property
    def total(self) -> int:
        return self.model + self.activations + self.inputs + self.data

    @property
    def model(self) -> int:
        """Bytes of the model itself and its training state: neither the batch nor the input size
        changes them."""
        return self.weights + self.gradients + self.optimizer + self.tracer

    @property
    def per_sample(self) -> int:
        """Bytes each sample of the batch adds (activations and inputs grow linearly with it)."""
        return math.ceil((self.activations + self.inputs) / max(self.batch, 1))

    @property
    def fixed(self) -> int:
        """Bytes that do not depend on the batch."""
        return self.model + self.data

    def largest(self) -> tuple[str, int]:
        """The name and size of the largest part, for a one-line message."""
        names = ("weights", "gradients", "optimizer", "activations", "inputs", "tracer", "data")
        parts = {k: getattr(self, k) for k in names}
        name = max(parts, key=lambda k: parts[k])
        return name, parts[name]


def buffer_bytes(summary: Summary) -> int:
    """A BatchNorm's buffers (running mean and variance, one int64 count) from its parameters
    (weight and bias, one each per channel): what the summary does not list itself."""
    return sum(lr.params * FLOAT_BYTES + LABEL_BYTES for lr in summary.layers if "Norm" in lr.type and lr.params)


def module_buffer_bytes(model: nn.Module) -> int:
    """The real buffers of a module (for a user's module, whose buffers may be anything)."""
    return sum(b.numel() * b.element_size() for b in model.buffers())


def grad_bytes(summary: Summary) -> int:
    """One gradient per trainable parameter, in the parameters' own dtype."""
    if summary.total_params == 0:
        return 0
    return summary.param_bytes * summary.trainable_params // summary.total_params


def tracer_bytes(layers: int, buffers: int) -> int:
    """The tracer's own buffers: statistics rows, the reduction's scratch and samples, and the
    copy of every buffer taken to restore the model afterwards."""
    rows = layers * ROW * FLOAT_BYTES
    scratch = CHUNK * FLOAT_BYTES + min(layers, GROUP_LAYERS) * HIST_SAMPLE * FLOAT_BYTES
    return rows + scratch + buffers


def input_bytes(shape: Sequence[int], count: int = 1) -> int:
    """``count`` float32 batches of ``shape`` (N, C, H, W) with their labels."""
    return count * (math.prod(shape) * FLOAT_BYTES + shape[0] * LABEL_BYTES)


def trace_need(summary: Summary, buffers: int | None = None, weights_exist: bool = False) -> MemoryNeed:
    """What one traced forward and backward pass at ``summary.input_shape`` needs.

    ``buffers`` defaults to the BatchNorm buffers read from the summary; ``weights_exist`` leaves the
    weights out (a user's module already holds them, so they are already in use, not needed anew).
    """
    buf = buffer_bytes(summary) if buffers is None else buffers
    return MemoryNeed(
        weights=0 if weights_exist else summary.param_bytes + buf,
        gradients=grad_bytes(summary),
        optimizer=0,
        activations=math.ceil(summary.activation_bytes * ACTIVATION_SHARE),
        inputs=input_bytes(summary.input_shape),
        tracer=tracer_bytes(len(summary.layers), buf),
        batch=summary.input_shape[0],
    )


def compare_need(summaries: Sequence[Summary], batch: int, steps: int, data: int) -> MemoryNeed:
    """What a comparison needs: every model built at once (and, when training, with its gradients
    and momentum buffers, as the models advance in lockstep), the largest single traced pass on
    top, the batch being made (:data:`BATCH_COPIES` of it) and the ``data`` bytes its data set
    holds whatever the batch. ``summaries`` are at one image."""
    if not summaries:
        return MemoryNeed(0, 0, 0, 0, 0, 0, batch)
    one = [trace_need(s) for s in summaries]
    grads = [n.gradients for n in one]
    training = steps > 0
    passes = TRAINING_PASSES if training and len(one) > 1 else 1
    return MemoryNeed(
        weights=sum(n.weights for n in one),
        gradients=sum(grads) if training else max(grads),
        optimizer=sum(grads) if training else 0,
        activations=max(n.activations for n in one) * batch * passes,
        inputs=input_bytes((batch, *summaries[0].input_shape[1:]), BATCH_COPIES),
        tracer=max(n.tracer for n in one),
        batch=batch,
        data=data,
    )


_HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
)


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are meta tensors and whose hooks are gone:
    the user's module itself never runs, and the hooks they registered never fire, for an estimate."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="meta"), p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty(b.shape, dtype=b.dtype, device="meta")
    twin = copy.deepcopy(model, memo)
    for m in twin.modules():
        for name in _HOOK_DICTS:
            hooks = getattr(m, name, None)
            if isinstance(hooks, dict):
                hooks.clear()
    return twin


def module_need(model: nn.Module, shape: Shape, label: str) -> MemoryNeed:
    """What a trace of a user's module at ``shape`` needs on top of the weights it already holds:
    its real gradients and buffers, and the activations of a meta copy (:func:`meta_copy`). A
    module that cannot be copied or run on the meta device is estimated without activations (the
    real pass then reports its own failure)."""
    buffers = module_buffer_bytes(model)
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    key = (tuple(shape), fingerprint(model), tuple((p.shape, p.dtype) for p in model.parameters()))
    cached = _NEEDS.get(model)
    if cached is not None and cached[0] == key:  # the same module, layout and shape: the same activations
        return cached[1]._replace(gradients=grads)
    try:
        summary = analyze_module(meta_copy(model), shape, label, find_structure=False)  # memory needs layers only
    except Exception:  # an estimate must never stop a trace that the tracer itself would run or explain
        return MemoryNeed(0, grads, 0, 0, input_bytes(shape), tracer_bytes(0, buffers), shape[0])
    need = trace_need(summary, buffers, weights_exist=True)._replace(gradients=grads)
    _NEEDS[model] = (key, need)
    return need


_NEEDS: weakref.WeakKeyDictionary[nn.Module, tuple[Any, MemoryNeed]] = weakref.WeakKeyDictionary()
"""The last estimate per module (a trace repeated on one model copies it to the meta device once)."""


__all__ = [
    "ACTIVATION_SHARE",
    "TRAINING_PASSES",
    "MemoryNeed",
    "buffer_bytes",
    "compare_need",
    "grad_bytes",
    "input_bytes",
    "meta_copy",
    "module_buffer_bytes",
    "module_need",
    "trace_need",
    "tracer_bytes",
]
