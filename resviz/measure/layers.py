"""Per-layer output statistics of one forward pass: hooks on every leaf module, rows on the device.

:class:`LayerCapture` is shared by the tracer (one measured pass) and the monitor (every k-th
training step). It hooks each leaf module (a module without children, the parameter-free
:class:`~resviz.model.blocks.Fork` excepted), queues its floating-point output in a
:class:`~resviz.measure.stats.LayerStatsBuffer`, and remembers what the records need besides the
statistics: the output shape, the module type, its parameters (first call only), its MACs and the
call number of modules that run several times in one forward.

Reductions are deferred to block boundaries where no in-place operation can rewrite an output
(resviz's own blocks avoid them), and made right after each layer otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from resviz.measure.branches import BranchCapture
from resviz.measure.counting import count_macs
from resviz.measure.graph import quietly
from resviz.measure.leaves import is_layer
from resviz.measure.static import branch_of, owning_block, stage_of
from resviz.measure.stats import HIST_EDGES, ROW, LayerStatsBuffer, Moments, batchnorm_moments, decode
from resviz.measure.structure import Layout
from resviz.model.blocks import ResidualBlock
from resviz.records import Branch, LayerStats, Shape


@dataclass(frozen=True)
class LayerFacts:
    """What a recorded output is, besides its statistics."""

    type: str
    params: int
    macs: int
    call: int
    shape: Shape


class LayerCapture:
    """Leaf-module hooks feeding one :class:`LayerStatsBuffer` (see the module docstring).

    ``blocks`` are the model's residual blocks as ``(name, module)``; ``count_nonfinite`` makes
    the buffer count NaN and Inf while reducing (the monitor cannot run a second pass).
    """

    def __init__(
        self, model: nn.Module, blocks: Sequence[tuple[str, nn.Module]], count_nonfinite: bool = False,
    ) -> None:
        self.model = model
        self.names = {m: n for n, m in model.named_modules()}
        self.blocks = blocks  # the same list: blocks found once the model runs are added to it
        self.buffer = LayerStatsBuffer(count_nonfinite=count_nonfinite)
        self.facts: list[LayerFacts] = []
        self.calls: dict[nn.Module, int] = {}
        self.current = ""
        """The leaf module that runs now (named in a forward's error message)."""
        self.layout: Layout | None = None
        """Where modules sit when blocks were found in the computation; else read from names."""
        self.defer = bool(self.blocks) and all(isinstance(b, ResidualBlock) for _, b in self.blocks)

    def defer_when_safe(self, branches: BranchCapture) -> None:
        """Defer reductions to block ends for a model whose blocks were found in its computation:
        its in-place operations are known, and what was recorded is reduced right before each
        runs, so nothing rewrites a recorded output before it is reduced."""
        if branches.sites:
            self.defer = True
            branches.before_inplace = self.buffer.flush

    def attach(self, handles: list[RemovableHandle]) -> None:
        for m in self.model.modules():
            if not is_layer(m):
                continue
            handles.append(m.register_forward_pre_hook(self._pre_hook))
            handles.append(m.register_forward_hook(self._layer_hook))
        if self.defer:
            for _, b in self.blocks:
                handles.append(b.register_forward_hook(self._flush_hook))

    def _pre_hook(self, module: nn.Module, _args: tuple[Any, ...]) -> None:
        self.current = self.names.get(module, "")

    @quietly
    def _layer_hook(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if not isinstance(out, Tensor) or not out.is_floating_point():
            return
        x = args[0] if args and isinstance(args[0], Tensor) else out
        self.buffer.add(self.names[module], out, relu_of=x if type(module) is nn.ReLU else None)
        if self.defer and module.training and isinstance(module, nn.modules.batchnorm._BatchNorm):
            self._reuse_batchnorm_moments(module, x, out)
        call = self.calls[module] = self.calls.get(module, 0) + 1
        params = sum(p.numel() for p in module._parameters.values() if p is not None) if call == 1 else 0
        self.facts.append(LayerFacts(type(module).__name__, params, count_macs(module, x, out), call, tuple(out.shape)))
        if not self.defer:
            self.buffer.flush()

    def _reuse_batchnorm_moments(self, module: nn.Module, x: Tensor, out: Tensor) -> None:
        """BatchNorm already reduced its input per channel: reuse that for the sums of its input
        (when recorded) and of its output instead of two more passes over each."""
        found = batchnorm_moments(module, x, out)
        if found is None:
            return
        row = self.buffer.find(x)
        if row is not None:
            self.buffer.give_moments(row, found[0])
        self.buffer.give_moments(len(self.buffer) - 1, found[1])

    @quietly
    def _flush_hook(self, _m: nn.Module, _args: tuple[Any, ...], _out: Any) -> None:
        self.buffer.flush()

    def records(
        self, host: Sequence[float], numels: Sequence[float] | None = None, batch: tuple[int, int] | None = None,
    ) -> list[tuple[LayerStats, bool]]:
        """One :class:`LayerStats` per recorded output from its transferred row (``ROW`` values
        each, from ``host[0]`` on), and whether its values were all finite. ``numels`` replaces
        the local element counts (the monitor's global ones); ``batch`` is ``(local, global)``:
        a shape that starts with the local batch gets the global one."""
        owner = {n for n, _ in self.blocks}  # a few set look-ups per layer, not a scan of every block
        buf = self.buffer
        sizes = numels if numels is not None else buf.numels
        places = self._places(buf.names, owner)
        out: list[tuple[LayerStats, bool]] = []
        for i, (name, numel, facts) in enumerate(zip(buf.names, sizes, self.facts, strict=True)):
            m = decode(list(host[i * ROW:(i + 1) * ROW]), int(numel))
            shape = facts.shape
            if batch is not None and shape and shape[0] == batch[0]:
                shape = (batch[1], *shape[1:])
            out.append((_layer_record(name, facts, shape, m, places[i]), m.finite))
        return out

    def _places(self, names: Sequence[str], owner: set[str]) -> list[tuple[str, Branch, str]]:
        """``(block, branch, stage)`` of each recorded layer."""
        if self.layout is not None:
            return self.layout.places(names)
        out = []
        for name in names:
            block = owning_block(name, owner)
            out.append((block, branch_of(name[len(block) + 1:]) if block else Branch.OUTSIDE, stage_of(name)))
        return out


def _layer_record(
    name: str, facts: LayerFacts, shape: Shape, m: Moments, place: tuple[str, Branch, str],
) -> LayerStats:
    block, branch, stage = place
    return LayerStats(
        name=name, type=facts.type, output_shape=shape, mean=m.mean, std=m.std, min=m.min, max=m.max,
        rms=m.rms, zero_fraction=m.zero_fraction, nan_count=m.nan_count, inf_count=m.inf_count,
        hist_edges=HIST_EDGES, hist_counts=m.hist, params=facts.params, macs=facts.macs, stage=stage,
        block=block, branch=branch, call=facts.call,
    )


__all__ = ["LayerCapture", "LayerFacts"]
