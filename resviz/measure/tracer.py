"""The hook tracer: one real forward and backward pass, measured layer by layer and block by block.

Per block, the two branches' gradients and the two addends' RMS come from
:mod:`resviz.measure.branches` (resviz's own blocks at their fork, every other residual addition
through the model's computation); per layer, output statistics from :mod:`resviz.measure.layers`.

:class:`TraceSession` owns every hook handle and every change it makes (BatchNorm statistics,
``.grad``, ``inplace`` flags, modes) and undoes them on exit, also when the forward raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from resviz.errors import ResvizError, one_line
from resviz.measure.branches import BlockProbe, BranchCapture
from resviz.measure.compiled import eager, original
from resviz.measure.layers import LayerCapture
from resviz.measure.outputs import find_logits, logits
from resviz.measure.ownership import Use, claim, release
from resviz.measure.state import Saved
from resviz.measure.static import stage_of
from resviz.measure.stats import (
    LayerStatsBuffer,
    count_nonfinite,
    norms,
)
from resviz.measure.transfer import HostTransfer
from resviz.model.blocks import find_blocks
from resviz.records import (
    BlockStats,
    LayerStats,
    ParamStats,
    Shape,
    ShortcutKind,
    Trace,
    reuse_notes,
    shape_str,
)

LossFn = Callable[[Tensor, Any], Tensor]


class TraceSession:
    """Context manager that hooks a model for one measured pass and restores it completely.

    Restored on exit (:class:`~resviz.measure.state.Saved`): every buffer, the tensor each module
    holds and its values (BatchNorm running statistics), each parameter's ``.grad`` object and
    ``requires_grad``, every module's ``training`` flag and ``inplace`` flag; every hook handle is
    removed. Parameters themselves are never written.
    """

    def __init__(
        self, model: nn.Module, layer_stats: bool = True, keep_vectors: bool = False, label: str | None = None,
        example: Tensor | None = None,
    ) -> None:
        self.model = model
        self.label = label or type(model).__name__
        self.layer_stats = layer_stats
        self.example = example
        """The input of the forward to measure: residual additions outside resviz's own blocks are
        found from the computation on its shape."""
        self.branches = BranchCapture(model, keep_vectors)
        self.layers = LayerCapture(model, self.branches.blocks)
        if layer_stats:
            self.branches.find_row = self.layers.buffer.find
        self._handles: list[RemovableHandle] = []
        self._stack = ExitStack()
        self._state: Saved | None = None

    @property
    def buffer(self) -> LayerStatsBuffer:
        return self.layers.buffer

    @property
    def current(self) -> str:
        return self.layers.current

    def __enter__(self) -> TraceSession:
        self._stack.callback(release, claim(self.model, Use.TRACE, self.label))  # before anything is touched
        try:
            self._state = Saved.of(self.model, grads=True, inplace=True)
            self._stack.callback(self._state.restore)
            for p in self.model.parameters():
                p.grad = None
            self._stack.callback(self._remove_hooks)
            self._stack.callback(self.branches.close)
            self._attach()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def restore_buffers(self) -> None:
        if self._state is not None:
            self._state.restore_buffers()

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _attach(self) -> None:
        self.branches.attach(self._handles, self.example)
        self.layers.defer_when_safe(self.branches)
        if self.layer_stats:
            self.layers.attach(self._handles)


@contextmanager
def _nonfinite_pass(model: nn.Module, names: set[str]) -> Iterator[dict[tuple[str, int], Tensor]]:
    """Hooks that count NaN/Inf in the outputs of ``names``, per call (second pass, only when needed)."""
    counts: dict[tuple[str, int], Tensor] = {}
    calls: dict[str, int] = {}
    handles = []
    for name, m in model.named_modules():
        if name in names:
            def hook(_m: nn.Module, _a: tuple[Any, ...], out: Any, name: str = name) -> None:
                if isinstance(out, Tensor):
                    calls[name] = calls.get(name, 0) + 1
                    counts[(name, calls[name])] = count_nonfinite(out)

            handles.append(m.register_forward_hook(hook))
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


def _make_inputs(
    model: nn.Module, inputs: Tensor | None, input_shape: Shape | None, dev: torch.device, gen: torch.Generator,
) -> Tensor:
    wdtype = next((p.dtype for p in model.parameters()), torch.float32)
    if inputs is None:
        if input_shape is None:
            raise ResvizError("give inputs or an input shape to trace")
        return torch.randn(input_shape, generator=gen, device=dev, dtype=wdtype)
    if not isinstance(inputs, Tensor):
        raise ResvizError(f"inputs must be a tensor, got {type(inputs).__name__}")
    if inputs.dim() != 4:
        raise ResvizError(f"inputs must be NxCxHxW (4 dimensions), got shape {shape_str(tuple(inputs.shape))}")
    if inputs.numel() == 0:
        raise ResvizError(f"inputs of shape {shape_str(tuple(inputs.shape))} hold no values")
    if not inputs.is_floating_point():
        raise ResvizError(f"inputs must be floating point, got {inputs.dtype}")
    if inputs.dtype != wdtype:
        raise ResvizError(f"inputs are {inputs.dtype} but the model's weights are {wdtype}: convert them")
    return inputs.detach().to(dev)


def _make_targets(targets: Any, out: Tensor, custom_loss: bool, gen: torch.Generator) -> Any:
    if custom_loss and targets is None:
        return None
    if out.dim() < 2 and not custom_loss:
        got = f"a tensor of shape {shape_str(tuple(out.shape))}" if out.dim() else "a scalar"
        raise ResvizError(f"the model returns {got}, not (batch, classes) logits: pass loss= to trace it")
    n, classes = out.shape[0], out.shape[-1]
    if targets is None:
        return torch.randint(0, classes, (n,), generator=gen, device=gen.device).to(out.device)
    if custom_loss:
        return targets.to(out.device) if isinstance(targets, Tensor) else targets
    if not isinstance(targets, Tensor):
        raise ResvizError(f"targets must be a tensor of class indices, got {type(targets).__name__}")
    if targets.dtype is torch.bool or targets.is_complex():
        raise ResvizError(f"targets must be class indices (integers) or soft targets (floats), got {targets.dtype}")
    if targets.is_floating_point():
        if tuple(targets.shape) != tuple(out.shape):
            raise ResvizError(f"soft targets must have shape {shape_str(tuple(out.shape))}")
        return targets.to(out.device)
    if targets.dim() != 1 or targets.shape[0] != n:
        raise ResvizError(f"targets must be {n} class indices, got shape {shape_str(tuple(targets.shape))}")
    lo, hi = int(targets.min()), int(targets.max())
    if lo < 0 or hi >= classes:
        raise ResvizError(f"targets out of range: got {lo}..{hi}, the model has {classes} classes (0..{classes - 1})")
    return targets.to(out.device)


def _check_channels(model: nn.Module, x: Tensor, label: str) -> None:
    first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if first is not None and x.shape[1] != first.in_channels:
        raise ResvizError(
            f"{label} expects {first.in_channels} input channels, got {x.shape[1]} (input {shape_str(tuple(x.shape))})"
        )


def _oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate" in text


def trace(
    model: nn.Module,
    inputs: Tensor | None = None,
    input_shape: Shape | None = None,
    targets: Any = None,
    loss: LossFn | None = None,
    backward: bool = True,
    amp: torch.dtype | None = None,
    seed: int = 0,
    *,
    channels_last: bool = False,
    label: str | None = None,
) -> Trace:
    """Run one forward (and backward) pass of ``model`` with hooks and return plain statistics.

    The model is traced where it lives and left exactly as it was. Without ``inputs``, a seeded
    N(0, 1) batch of ``input_shape`` is used; without ``targets`` and ``loss``, cross-entropy
    against seeded random labels. ``amp`` (bfloat16 or float16) runs the pass under autocast.
    ``channels_last`` feeds the batch in NHWC memory format (the model's own tensors are not
    converted, as the model is left as it was). The global RNG state is left untouched.
    A compiled model (``torch.compile``) is traced through its original module, eagerly (the
    compiler stance ``force_eager``, :mod:`resviz.measure.compiled`): hooks do not run inside a
    compiled graph, and the eager pass computes the same numbers.
    """
    model = original(model)
    params = list(model.parameters())
    dev = params[0].device if params else torch.device("cpu")
    name = label or type(model).__name__
    with torch.random.fork_rng(devices=[]), eager():
        gen = torch.Generator(device=dev).manual_seed(seed)
        x = _make_inputs(model, inputs, input_shape, dev, gen)
        return _trace(model, name, x, targets, loss, backward, dev, amp, seed, gen, channels_last)


def _trace(
    model: nn.Module, label: str, x: Tensor, targets: Any, loss: LossFn | None, backward: bool,
    dev: torch.device, amp: torch.dtype | None, seed: int, gen: torch.Generator, channels_last: bool,
) -> Trace:
    if channels_last:  # PyTorch runs NHWC on CPU as well as CUDA, so honour it everywhere
        x = x.contiguous(memory_format=torch.channels_last)
    _check_channels(model, x, label)
    if not any(p.requires_grad for p in model.parameters()):
        x = x.requires_grad_(True)  # keep a graph so branch gradients still exist
    loss_fn: LossFn = loss if loss is not None else F.cross_entropy
    with TraceSession(model, label=label, example=x) as session:
        step = "forward"
        try:
            with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                out = model(x)
            pred = out if loss is not None else logits(out, label)  # a custom loss reads the output as it is
            found = find_logits(out)
            t = _make_targets(targets, found if found is not None else x, loss is not None, gen)
            step = "loss"
            value = loss_fn(pred, t)
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise ResvizError("the loss must return a scalar tensor")
            session.buffer.flush()
            step = "backward"
            if backward:
                value.backward()
        except ResvizError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # what PyTorch raises for impossible input
            if _oom(exc):
                raise ResvizError(
                    f"out of memory tracing {label} at batch {x.shape[0]} on {dev.type}: try a smaller --input"
                ) from None
            where = {"forward": f" at {session.current}" if session.current else "",
                     "loss": " in the loss", "backward": " in the backward pass"}[step]
            raise ResvizError(f"{label} fails on input {shape_str(tuple(x.shape))}{where}: {one_line(exc)}") from None
        return _finish(session, model, label, x, dev, amp, seed, value.detach(), backward)


def _finish(
    session: TraceSession, model: nn.Module, label: str, x: Tensor,
    dev: torch.device, amp: torch.dtype | None, seed: int, loss: Tensor, backward: bool,
) -> Trace:
    """Gather every device number into one tensor, copy it once, and build the records."""
    named = [(n, p) for n, p in model.named_parameters()]
    wnorms = norms([p.detach() for _, p in named])
    with_grad = [(n, p.grad) for n, p in named if p.grad is not None] if backward else []
    gnorms = norms([g for _, g in with_grad])
    rows = session.buffer.device_rows()
    out = HostTransfer()
    loss_slot, w_slots, g_slots = out.put(loss), out.put_all(wnorms), out.put_all(gnorms)
    slots: dict[tuple[str, str], int] = {}
    for name, probe in session.branches.probes.items():
        main = rows[probe.main_row, 1] if rows is not None and probe.main_row is not None else probe.main
        skip = rows[probe.skip_row, 1] if rows is not None and probe.skip_row is not None else probe.skip
        for key, val in (("main_rms", main), ("skip_rms", skip), *probe.grads.items()):
            if val is not None:
                slots[(name, key)] = out.put(val)
    first_row = len(out)
    host = out.fetch(tail=rows)  # the one device-to-host transfer
    loss_value = host[loss_slot]
    grad_by_name = {n: host[i] for (n, _), i in zip(with_grad, g_slots, strict=True)}
    params = tuple(ParamStats.of(n, host[i], grad_by_name.get(n)) for (n, _), i in zip(named, w_slots, strict=True))
    blocks = _block_stats(session, host, slots, backward)
    layers, bad = _layer_stats(session, host[first_row:])
    notes: list[str] = []
    if bad:
        layers = _recount(session, model, x, dev, amp, layers, bad)
        first = next(lr for lr in layers if lr.name == bad[0])
        notes.append(f"first NaN/Inf in {first.name} ({first.type}): {first.nan_count} NaN, {first.inf_count} Inf")
    if not math.isfinite(loss_value):
        notes.append(f"the loss is {loss_value}")
    notes.extend(session.branches.notes)
    if not blocks:
        notes.append(f"{label} has no residual blocks")
    notes.extend(reuse_notes(blocks))
    shared = {b.name for b in blocks if b.call > 1}  # a shared block's layers are said by its note
    notes.extend(reuse_notes(lr for lr in layers if lr.block not in shared))
    return Trace(
        model=label, input_shape=tuple(x.shape), device=str(dev),
        dtype=str(amp or torch.float32).removeprefix("torch."),
        torch_version=torch.__version__, seed=seed, loss=loss_value, layers=layers, blocks=blocks,
        params=params, notes=tuple(notes),
    )


def _block_stats(
    session: TraceSession, host: list[float], slots: dict[tuple[str, str], int], backward: bool,
) -> tuple[BlockStats, ...]:
    out: list[BlockStats] = []
    for name, probe in session.branches.probes.items():
        values = {key: host[i] for (n, key), i in slots.items() if n == name}
        if "main_rms" not in values and "skip_rms" not in values and not probe.grads:
            continue  # not executed
        out.append(block_record(probe, values, len(out), backward))
    return tuple(out)


def block_record(probe: BlockProbe, values: dict[str, float], index: int, grads: bool) -> BlockStats:
    """A block's record from its numbers on the host: ``main_rms``/``skip_rms`` hold the L2 norms
    of the two addends (divided here by the square root of their size), ``main``/``skip``/``total``
    the gradient norms at the block input, kept only when ``grads`` (a backward pass ran). A plain
    block's shortcut carries nothing: 0.0 by definition."""
    plain = probe.shortcut is ShortcutKind.NONE
    return BlockStats(
        name=probe.name, stage=probe.stage or stage_of(probe.name), index=index, shortcut=probe.shortcut,
        main_rms=values.get("main_rms", 0.0) / math.sqrt(max(probe.main_numel, 1)),
        skip_rms=0.0 if plain else values.get("skip_rms", 0.0) / math.sqrt(max(probe.skip_numel, 1)),
        grad_main=values.get("main") if grads else None,
        grad_skip=(0.0 if plain else values.get("skip")) if grads else None,
        grad_total=values.get("total") if grads else None, call=probe.call,
    )


def _layer_stats(session: TraceSession, host: list[float]) -> tuple[tuple[LayerStats, ...], list[str]]:
    session.layers.layout = session.branches.layout
    found = session.layers.records(host)
    return tuple(lr for lr, _ in found), [lr.name for lr, finite in found if not finite]


def _recount(
    session: TraceSession, model: nn.Module, x: Tensor, dev: torch.device, amp: torch.dtype | None,
    layers: tuple[LayerStats, ...], bad: list[str],
) -> tuple[LayerStats, ...]:
    """Second, forward-only pass that counts NaN/Inf exactly in the layers that had them."""
    session.restore_buffers()
    with _nonfinite_pass(model, set(bad)) as counts, torch.no_grad(), \
            torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
        model(x)
    keys = list(counts)
    values = torch.stack([counts[k] for k in keys]).cpu().tolist() if keys else []
    found = dict(zip(keys, values, strict=True))
    return tuple(
        replace(lr, nan_count=int(found[lr.name, lr.call][0]), inf_count=int(found[lr.name, lr.call][1]))
        if (lr.name, lr.call) in found else lr
        for lr in layers
    )


def branch_gradients(
    model: nn.Module, x: Tensor, loss: LossFn | None = None,
) -> dict[str, dict[str, Tensor]]:
    """The three gradient vectors (``main``, ``skip``, ``total``) at every block's fork.

    For checking the decomposition main + skip = total; costs a copy of every block input.
    """
    model = original(model)
    session = TraceSession(model, layer_stats=False, keep_vectors=True, example=x)
    with session, eager():
        out = model(x)
        value = (loss or (lambda o, _t: logits(o, type(model).__name__).float().square().mean()))(out, None)
        value.backward()
    return {n: dict(p.vectors) for n, p in session.branches.probes.items()}


__all__ = [
    "BlockProbe", "BranchCapture", "TraceSession", "branch_gradients", "find_blocks", "stage_of", "trace",
]
