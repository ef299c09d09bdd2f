"""Signal Propagation Plots at initialisation (Brock, De, Smith 2021, arXiv:2101.08692, Sec. 3;
De & Smith 2020, arXiv:2002.10444).

One forward pass per model, without gradients, on one seeded N(0, 1) batch. At every residual block
(resviz's own blocks, or the residual additions :mod:`resviz.measure.structure` finds in the
computation of any other model, in forward order) three numbers of a tensor y of shape (N, C, ...),
with moments over every axis but the channel axis (1; the last for a sequence of tokens (N, T, D)):

* ``avg_sq_mean`` = mean over c of (mean over N, H, W of y[:, c])^2 for the block output;
* ``avg_var``     = mean over c of the population variance (divisor N*H*W) of y[:, c], block output;
* ``branch_var``  = the same average variance for the residual branch alone: the main-path addend
  of the addition out = F(x) + S(x), i.e. F(x). A plain block (no shortcut) has no addition, so
  its branch is the whole block and ``branch_var == avg_var``. For a block found in the
  computation, the block output is the sum itself (before any activation after it) and the branch
  is the main operand actually added (after SE, layer-scale or drop-path).

The papers' plots at initialisation normalise with batch statistics, so BatchNorm runs in train
mode by default (``train_mode=False``: running statistics); every other module runs in eval mode
so the pass is deterministic (no dropout). The model is left as it was: training flags, buffers
(BatchNorm running statistics), parameters, ``.grad`` and ``requires_grad``, hooks removed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from resviz.errors import ResvizError
from resviz.measure.branches import BlockProbe, SiteMode
from resviz.measure.compiled import eager, original
from resviz.measure.graph import quietly
from resviz.measure.static import stage_of
from resviz.measure.structure import Layout, ResidualSite, discover
from resviz.model.blocks import ResidualBlock, find_blocks, shortcut_type
from resviz.records.signal import BatchNormMode, SignalBlock, SignalModel, SignalStudy
from resviz.studies.held import failures_in_one_line, held

Models = Sequence[tuple[str, nn.Module]]


def set_batchnorm(model: nn.Module, mode: BatchNormMode) -> None:
    """Every module in eval mode except BatchNorm layers, which run in ``mode``."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(mode is BatchNormMode.TRAIN)


def placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter (CPU float32 without any)."""
    p = next(model.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def gaussian(shape: Sequence[int], seed: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A seeded N(0, 1) tensor, drawn on the CPU so every device gets the same numbers."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=gen).to(device=device, dtype=dtype)


def check_shape(shape: Sequence[int], dims: int, what: str) -> tuple[int, ...]:
    """``shape`` as a tuple of ``dims`` positive ints, or a one-line error naming ``what`` it is."""
    values = tuple(shape)
    if len(values) != dims or not all(isinstance(v, int) and v > 0 for v in values):
        raise ResvizError(f"{what} must be {dims} positive integers, got {values!r}")
    return values


def check_models(models: Models) -> None:
    if not models:
        raise ResvizError("give at least one model to study")
    names = [n for n, _ in models]
    if len(set(names)) != len(names):
        raise ResvizError(f"model names must differ, got {names}")


def channel_moments(y: Tensor) -> Tensor:
    """``[average channel squared mean, average channel variance]`` of ``y``: channels on axis 1
    of an image tensor, on the last axis of a sequence of tokens (N, T, D)."""
    return _moments(y.movedim(-1, 1) if y.dim() == 3 else y)


def _moments(y: Tensor) -> Tensor:
    """``[avg_sq_mean, avg_var]`` of ``y`` (channel axis 1, moments over every other axis, population
    variance), as one device tensor."""
    dims = [d for d in range(y.dim()) if d != 1]
    var, mean = torch.var_mean(y.detach().float(), dim=dims, correction=0)
    return torch.stack((mean.square().mean(), var.mean()))


class _SignalHooks:
    """Forward hooks that reduce each block's output and main addend to device scalars."""

    def __init__(self, model: nn.Module) -> None:
        self.blocks = [(n, b) for n, b in find_blocks(model) if isinstance(b, ResidualBlock)]
        self.order: list[str] = []
        self.out: dict[str, Tensor] = {}
        self.branch: dict[str, Tensor] = {}
        self.repeated: set[str] = set()

    def attach(self, handles: list[RemovableHandle]) -> None:
        for name, block in self.blocks:  # resviz's blocks; any other model is measured by _measure_found
            handles.append(block.register_forward_hook(self._output(name)))
            if block.add is not None:
                handles.append(block.add.register_forward_pre_hook(self._addend(name)))

    def _output(self, name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            if name in self.out:
                self.repeated.add(name)
            elif isinstance(out, Tensor):
                self.order.append(name)
                self.out[name] = channel_moments(out)

        return hook

    def _addend(self, name: str) -> Callable[..., None]:
        def pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
            if name not in self.out:  # the block's first call only
                self.branch[name] = channel_moments(args[0])[1]

        return pre


def _preact(blocks: Sequence[tuple[str, nn.Module]]) -> bool | None:
    flags = {getattr(b, "preact", None) for _, b in blocks}
    return flags.pop() if len(flags) == 1 else None


def _measure_found(label: str, model: nn.Module, x: Tensor, mode: BatchNormMode) -> SignalModel:
    """A model not built of resviz's blocks: its residual additions found from the computation
    (:mod:`resviz.measure.structure`); per addition, the sum and the main operand actually added."""
    out: dict[str, Tensor] = {}
    branch: dict[str, Tensor] = {}
    with held(model, label):
        set_batchnorm(model, mode)
        with failures_in_one_line(label, x.shape):
            sites = list(discover(model, tuple(x.shape), x.dtype).sites)
        recorder = SiteMode(model, sites, {s.name: BlockProbe(s.name, s.shortcut) for s in sites}, lambda *_: None)
        recorder.on_operands = lambda site, main, _skip: branch.__setitem__(site.name, channel_moments(main)[1])
        single = _one_per_call(sites)
        recorder.on_sum = lambda site, y: None if site.module in single else out.__setitem__(site.name,
                                                                                            channel_moments(y))
        handles: list[RemovableHandle] = [
            model.get_submodule(m).register_forward_hook(_module_output(m, sites, out)) for m in single
        ]
        try:
            with failures_in_one_line(label, x.shape), torch.no_grad(), eager():
                recorder.begin(x, handles)
                try:
                    model(x)
                finally:
                    recorder.end()
        finally:
            for h in handles:
                h.remove()
    layout = Layout(sites, stage_of)
    names = [s.name for s in sites if s.name in out and s.name in branch]
    host = torch.stack([torch.cat((out[n], branch[n].reshape(1))) for n in names]).tolist() if names else []
    kinds = {s.name: s.shortcut for s in sites}
    blocks = tuple(
        SignalBlock(name=n, stage=layout.stages[n], avg_sq_mean=sq, avg_var=var, branch_var=b, shortcut=kinds[n])
        for n, (sq, var, b) in zip(names, host, strict=True)
    )
    notes = ["blocks found from the computation; a module that performs two residual additions (a ViT block) "
             "has the sums themselves as block outputs"]
    if not sites:
        notes.append(f"{label} has no residual blocks")
    return SignalModel(name=label, blocks=blocks, notes=tuple(notes), preact=None)


def _one_per_call(sites: Sequence[ResidualSite]) -> set[str]:
    """Modules whose every call performs exactly one residual addition: their output is the block
    output (after any activation that follows the sum, as for resviz's blocks)."""
    several = {s.module for s in sites if s.index > 1}
    return {s.module for s in sites if s.module not in several}


def _module_output(module: str, sites: Sequence[ResidualSite], out: dict[str, Tensor]) -> Callable[..., None]:
    names = iter([s.name for s in sites if s.module == module])  # one per call, in call order

    @quietly
    def hook(_m: nn.Module, _args: tuple[Any, ...], y: Any) -> None:
        name = next(names, None)
        if name is not None and isinstance(y, Tensor):
            out[name] = channel_moments(y)

    return hook


def _measure(label: str, model: nn.Module, x: Tensor, mode: BatchNormMode) -> SignalModel:
    if not any(isinstance(m, ResidualBlock) for m in model.modules()):
        return _measure_found(label, model, x, mode)
    hooks = _SignalHooks(model)
    handles: list[RemovableHandle] = []
    with held(model, label):
        set_batchnorm(model, mode)
        try:
            hooks.attach(handles)
            with failures_in_one_line(label, x.shape), torch.no_grad(), eager():
                model(x)
        finally:
            for h in handles:
                h.remove()
    return _record(label, model, hooks)


def _record(label: str, model: nn.Module, hooks: _SignalHooks) -> SignalModel:
    by_name = dict(hooks.blocks)
    names = hooks.order
    rows = [torch.cat((hooks.out[n], hooks.branch.get(n, hooks.out[n][1] * float("nan")).reshape(1))) for n in names]
    host = torch.stack(rows).tolist() if rows else []  # one device-to-host transfer per model
    blocks = []
    for n, (sq, var, branch) in zip(names, host, strict=True):
        kind = shortcut_type(by_name[n])
        blocks.append(SignalBlock(
            name=n, stage=stage_of(n), avg_sq_mean=sq, avg_var=var,
            branch_var=var if by_name[n].add is None else branch,
            shortcut=kind,
        ))
    notes = [f"{n} runs more than once in one forward: its first call is recorded" for n in sorted(hooks.repeated)]
    if not hooks.blocks:
        notes.append(f"{label} has no residual blocks")
    return SignalModel(name=label, blocks=tuple(blocks), notes=tuple(notes), preact=_preact(hooks.blocks))


def signal_study(
    models: Models,
    input_shape: Sequence[int] = (64, 3, 32, 32),
    seed: int = 0,
    train_mode: bool = True,
) -> SignalStudy:
    """Signal Propagation Plots of ``models`` (``(name, module)`` pairs) at their current weights.

    Every model sees the same seeded N(0, 1) batch of ``input_shape`` (N, C, H, W); BatchNorm uses
    batch statistics when ``train_mode`` (the papers' setting), running statistics otherwise.
    """
    check_models(models)
    shape = check_shape(input_shape, 4, "the input shape (N, C, H, W)")
    mode = BatchNormMode.TRAIN if train_mode else BatchNormMode.EVAL
    if mode is BatchNormMode.TRAIN and shape[0] < 2:
        raise ResvizError("BatchNorm with batch statistics needs a batch of at least 2")
    results = []
    device = torch.device("cpu")
    for label, module in models:
        model = original(module)
        device, dtype = placement(model)
        results.append(_measure(label, model, gaussian(shape, seed, device, dtype), mode))
    return SignalStudy(input_shape=shape, seed=seed, bn_mode=mode, models=tuple(results), device=str(device))


__all__ = [
    "channel_moments", "check_models", "check_shape", "gaussian", "placement", "set_batchnorm",
    "signal_study",
]
