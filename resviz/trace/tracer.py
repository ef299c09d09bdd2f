"""The hook tracer: one real forward and backward pass, measured layer by layer and block by block.

Branch gradients follow the algebra of a residual block y = F(x) + S(x): dL/dx is the sum of
what flows back through F (the main path) and through S (the shortcut). resviz blocks expose the
split as a :class:`~resviz.model.blocks.Fork` returning two views of x, so a tensor hook on each
view sees exactly one term and a hook on x sees the sum. torchvision-style blocks (``conv1`` ...
``downsample``, in-place ReLU, ``out += identity``) get the same split from a forward pre-hook
that hands the block a view for the shortcut and ``conv1`` another view for the main path.

:class:`TraceSession` owns every hook handle and every change it makes (BatchNorm statistics,
``.grad``, ``inplace`` flags, modes) and undoes them on exit, also when the forward raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from resviz.errors import ResvizError
from resviz.model.blocks import Fork, PreActBlock, ResidualBlock, is_residual_block
from resviz.trace.records import Shape, Summary, shape_str
from resviz.trace.stats import HIST_EDGES, LayerStatsBuffer, count_nonfinite, decode, norms
from resviz.trace.trace_records import BlockStats, LayerStats, ParamStats, Trace

LossFn = Callable[[Tensor, Any], Tensor]


def _norm(t: Tensor) -> Tensor:
    return norms([t.detach()])[0]


@dataclass
class BlockProbe:
    """Device scalars of one block, filled by hooks during one forward/backward."""

    name: str
    shortcut: str
    main: Tensor | None = None
    skip: Tensor | None = None
    main_numel: int = 0
    skip_numel: int = 0
    grads: dict[str, Tensor] = field(default_factory=dict)
    vectors: dict[str, Tensor] = field(default_factory=dict)


def _shortcut_of(block: nn.Module) -> str:
    if isinstance(block, ResidualBlock):
        return block.shortcut_type
    return "projection" if getattr(block, "downsample", None) is not None else "identity"


def _main_operand(block: nn.Module) -> nn.Module | None:
    """The module whose output is the main operand of the residual addition."""
    if isinstance(block, ResidualBlock) and block.add is not None:
        return None  # read from the ResidualAdd pre-hook instead
    if isinstance(block, PreActBlock):
        return getattr(block, "conv3", None) or getattr(block, "conv2", None)
    return getattr(block, "bn3", None) or getattr(block, "bn2", None)


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Residual blocks (resviz and torchvision-style) in registration order, outermost only."""
    found: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if m is model or not is_residual_block(m):
            continue
        if any(name.startswith(f"{outer}.") for outer, _ in found):
            continue
        found.append((name, m))
    return found


class BranchCapture:
    """Hooks that measure, per block, the RMS of both addends and the gradient of both branches.

    ``keep_vectors`` also keeps detached copies of the three gradients (for verification only).
    """

    def __init__(self, model: nn.Module, keep_vectors: bool = False) -> None:
        self.model = model
        self.keep_vectors = keep_vectors
        self.blocks = find_blocks(model)
        self.probes: dict[str, BlockProbe] = {}
        self._views: dict[int, tuple[BlockProbe, Tensor]] = {}

    def reset(self) -> None:
        self.probes = {n: BlockProbe(n, _shortcut_of(b)) for n, b in self.blocks}
        self._views.clear()

    def _grad_hook(self, probe: BlockProbe, key: str, t: Tensor) -> None:
        if not t.requires_grad:
            return

        def hook(g: Tensor) -> None:
            probe.grads[key] = _norm(g)
            if self.keep_vectors:
                probe.vectors[key] = g.detach().clone()

        t.register_hook(hook)

    def attach(self, handles: list[RemovableHandle]) -> None:
        self.reset()
        for name, block in self.blocks:
            probe = self.probes[name]
            if isinstance(block, ResidualBlock):
                self._attach_resviz(block, probe, handles)
            else:
                self._attach_foreign(block, probe, handles)
            main_mod = _main_operand(block)
            if main_mod is not None:
                handles.append(main_mod.register_forward_hook(self._main_hook(probe)))

    def _main_hook(self, probe: BlockProbe) -> Callable[..., None]:
        def hook(_m: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            if isinstance(out, Tensor):
                probe.main, probe.main_numel = _norm(out), out.numel()

        return hook

    def _attach_resviz(self, block: ResidualBlock, probe: BlockProbe, handles: list[RemovableHandle]) -> None:
        if block.fork is None or block.add is None:
            def plain_pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
                self._grad_hook(probe, "total", args[0])
                self._grad_hook(probe, "main", args[0])

            handles.append(block.register_forward_pre_hook(plain_pre))
            return

        def fork_hook(_m: nn.Module, args: tuple[Any, ...], out: tuple[Tensor, Tensor]) -> None:
            self._grad_hook(probe, "total", args[0])
            self._grad_hook(probe, "main", out[0])
            self._grad_hook(probe, "skip", out[1])

        def add_pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
            main, skip = args[0], args[1]
            probe.main, probe.main_numel = _norm(main), main.numel()
            probe.skip, probe.skip_numel = _norm(skip), skip.numel()

        handles.append(block.fork.register_forward_hook(fork_hook))
        handles.append(block.add.register_forward_pre_hook(add_pre))

    def _attach_foreign(self, block: nn.Module, probe: BlockProbe, handles: list[RemovableHandle]) -> None:
        """torchvision-style: the block gets a skip view of x, ``conv1`` a separate main view."""

        def block_pre(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            x = args[0]
            if not isinstance(x, Tensor):
                return None
            xs = x.view_as(x)
            self._views[id(xs)] = (probe, x)
            self._grad_hook(probe, "total", x)
            self._grad_hook(probe, "skip", xs)
            if getattr(block, "downsample", None) is None:
                probe.skip, probe.skip_numel = _norm(xs), xs.numel()
            return (xs, *args[1:])

        def conv1_pre(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            entry = self._views.pop(id(args[0]), None) if args else None
            if entry is None:
                return None
            _, x = entry
            xm = x.view_as(x)
            self._grad_hook(probe, "main", xm)
            return (xm, *args[1:])

        def ds_hook(_m: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            if isinstance(out, Tensor):
                probe.skip, probe.skip_numel = _norm(out), out.numel()

        handles.append(block.register_forward_pre_hook(block_pre))
        handles.append(block.conv1.register_forward_pre_hook(conv1_pre))  # type: ignore[union-attr,operator]
        ds = getattr(block, "downsample", None)
        if isinstance(ds, nn.Module):
            handles.append(ds.register_forward_hook(ds_hook))


class TraceSession:
    """Context manager that hooks a model for one measured pass and restores it completely.

    Restored on exit: BatchNorm running statistics (all buffers), each parameter's ``.grad``
    object and ``requires_grad``, every module's ``training`` flag and ``inplace`` flag; every
    hook handle is removed. Parameters themselves are never written.
    """

    def __init__(self, model: nn.Module, layer_stats: bool = True, keep_vectors: bool = False) -> None:
        self.model = model
        self.layer_stats = layer_stats
        self.names = {m: n for n, m in model.named_modules()}
        self.branches = BranchCapture(model, keep_vectors)
        self.buffer = LayerStatsBuffer()
        self.shapes: list[Shape] = []
        self.current = ""
        self._handles: list[RemovableHandle] = []
        self._stack = ExitStack()
        self._state: dict[str, Any] = {}
        # Defer reductions to block boundaries only where no in-place op can rewrite an output.
        self._defer = all(isinstance(b, ResidualBlock) for _, b in self.branches.blocks)

    def __enter__(self) -> TraceSession:
        self._state = self._snapshot_state()
        self._stack.callback(self._restore_state, self._state)
        self._stack.callback(self._remove_hooks)
        try:
            self._attach()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _snapshot_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "buffers": [(b, b.detach().clone()) for b in self.model.buffers()],
            "training": [(m, m.training) for m in self.model.modules()],
            "params": [(p, p.grad, p.requires_grad) for p in self.model.parameters()],
            "inplace": [(m, m.inplace) for m in self.model.modules() if getattr(m, "inplace", False) is True],
        }
        for p in self.model.parameters():
            p.grad = None
        for m, _ in state["inplace"]:
            m.inplace = False
        return state

    @staticmethod
    @torch.no_grad()
    def _restore_state(state: dict[str, Any]) -> None:
        for b, saved in state["buffers"]:
            b.copy_(saved)
        for m, mode in state["training"]:
            m.training = mode
        for p, grad, req in state["params"]:
            p.grad = grad
            p.requires_grad_(req)
        for m, flag in state["inplace"]:
            m.inplace = flag

    def restore_buffers(self) -> None:
        with torch.no_grad():
            for b, saved in self._state["buffers"]:
                b.copy_(saved)

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _attach(self) -> None:
        self.branches.attach(self._handles)
        if not self.layer_stats:
            return
        for m in self.model.modules():
            if isinstance(m, Fork) or any(True for _ in m.children()):
                continue
            self._handles.append(m.register_forward_pre_hook(self._pre_hook))
            self._handles.append(m.register_forward_hook(self._layer_hook))
        if self._defer:
            for _, b in self.branches.blocks:
                self._handles.append(b.register_forward_hook(self._flush_hook))

    def _pre_hook(self, module: nn.Module, _args: tuple[Any, ...]) -> None:
        self.current = self.names.get(module, "")

    def _layer_hook(self, module: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
        if not isinstance(out, Tensor) or not out.is_floating_point():
            return
        self.buffer.add(self.names[module], out)
        self.shapes.append(tuple(out.shape))
        if not self._defer:
            self.buffer.flush()

    def _flush_hook(self, _m: nn.Module, _args: tuple[Any, ...], _out: Any) -> None:
        self.buffer.flush()


@contextmanager
def _nonfinite_pass(model: nn.Module, names: set[str]) -> Iterator[dict[str, Tensor]]:
    """Hooks that count NaN/Inf in the outputs of ``names`` (second pass, only when needed)."""
    counts: dict[str, Tensor] = {}
    handles = []
    for name, m in model.named_modules():
        if name in names:
            def hook(_m: nn.Module, _a: tuple[Any, ...], out: Any, name: str = name) -> None:
                if isinstance(out, Tensor) and name not in counts:
                    counts[name] = count_nonfinite(out)

            handles.append(m.register_forward_hook(hook))
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()

