"""The private-PyTorch fast paths (``resviz.measure.fastpaths``) against their public fallbacks.

The BatchNorm fast path runs only for training-mode BatchNorm inside a model made of resviz's own
blocks (``LayerCapture.defer``), so these tests trace resviz's resnet20 in training mode, check
that the path actually ran, and compare its numbers with reductions written here and with the
fallback. The monitor's engine callback is compared with its public fallback the same way.
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz
from resviz.measure import fastpaths, stats
from resviz.measure.monitor import Monitor
from resviz.measure.stats import HIST_BINS, HIST_HI, HIST_LO, HIST_SAMPLE, LayerStatsBuffer
from resviz.model.blocks import Fork
from resviz.model.resnet import build_model
from resviz.records import MonitorSeries, Trace

INPUT = (2, 3, 16, 16)


def _model() -> nn.Module:
    """resnet20 in training mode, BatchNorm affine terms away from (1, 0) so every term of the
    moment formulas matters."""
    torch.manual_seed(0)
    model = build_model("resnet20", device="cpu")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-1.0, 1.0)
    return model.train()


def _bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


class _Spies:
    """Counts what the fast paths did during a trace."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.saved_hits = 0  # BatchNorm outputs whose saved mean/invstd were read
        self.saved_calls = 0
        self.known = 0  # rows whose sum and sum of squares were given, not reduced
        self.found = 0  # recorded rows reused through LayerStatsBuffer.find
        real_saved, real_rows, real_find = fastpaths.batchnorm_saved, stats._rows_cpu, LayerStatsBuffer.find

        def saved(out: Tensor) -> Any:
            got = real_saved(out)
            self.saved_calls += 1
            self.saved_hits += got is not None
            return got

        def rows(flats: list[Tensor], skip: list[bool], moments: list[Tensor | None], nonfinite: bool) -> Tensor:
            self.known += sum(m is not None for m in moments)
            return real_rows(flats, skip, moments, nonfinite)

        def find(buf: LayerStatsBuffer, t: Tensor) -> int | None:
            row = real_find(buf, t)
            self.found += row is not None
            return row

        monkeypatch.setattr(fastpaths, "batchnorm_saved", saved)
        monkeypatch.setattr(stats, "_rows_cpu", rows)
        monkeypatch.setattr(LayerStatsBuffer, "find", find)


def _trace(model: nn.Module, x: Tensor, on: bool) -> Trace:
    with fastpaths.fast_paths(on):
        return resviz.trace(model, inputs=x, seed=0)


# -- the switch ---------------------------------------------------------------------------------------


def test_switch_parses_the_environment_once_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fastpaths.parse(None) and fastpaths.parse("") and fastpaths.parse("1") and fastpaths.parse("yes")
    assert not any(fastpaths.parse(v) for v in ("0", "false", "No", " OFF "))
    before = fastpaths.enabled()
    try:
        monkeypatch.setenv(fastpaths.ENV_VAR, "0")
        importlib.reload(fastpaths)
        assert not fastpaths.enabled()
        monkeypatch.setenv(fastpaths.ENV_VAR, "1")
        assert not fastpaths.enabled()  # read at import, not per call
        monkeypatch.delenv(fastpaths.ENV_VAR)
        importlib.reload(fastpaths)
        assert fastpaths.enabled()
    finally:
        fastpaths.set_enabled(before)
    with fastpaths.fast_paths(False):
        assert not fastpaths.enabled()
        assert fastpaths.engine_callback() is None and fastpaths.foreach_norm() is None
        assert fastpaths.tensor_version(torch.zeros(1)) is None
    assert fastpaths.enabled() is before


def test_private_attributes_missing_give_the_fallback_not_an_error() -> None:
    class NativeBatchNormBackward0:  # what autograd's node is called, without the saved tensors
        _saved_training = True

    fake: Any = SimpleNamespace(grad_fn=NativeBatchNormBackward0())
    assert fastpaths.batchnorm_saved(fake) is None
    bn = nn.BatchNorm2d(3).train()
    out = bn(torch.randn(2, 3, 4, 4, requires_grad=True))
    with fastpaths.fast_paths(True):
        got = fastpaths.batchnorm_saved(out)
        assert got is not None and got[0].shape == (3,) and got[2] == bn.eps
        assert fastpaths.batchnorm_saved(bn.eval()(torch.randn(2, 3, 4, 4, requires_grad=True))) is None
    with fastpaths.fast_paths(False):
        assert fastpaths.batchnorm_saved(out) is None


def test_norms_fallback_equals_foreach_norm() -> None:
    ts = [torch.randn(5, 7).bfloat16(), torch.randn(3).bfloat16()]  # not the CPU float32 path
    with fastpaths.fast_paths(True):
        fast = stats.norms(ts)
    with fastpaths.fast_paths(False):
        slow = stats.norms(ts)
    want = [float(t.double().norm()) for t in ts]
    assert [float(v) for v in fast] == pytest.approx(want, rel=1e-5)
    assert [float(v) for v in slow] == pytest.approx(want, rel=1e-5)
    assert all(v.dtype == torch.float32 for v in (*fast, *slow))


# -- the tracer's BatchNorm moments -----------------------------------------------------------------------


def test_batchnorm_fast_path_runs_on_every_batchnorm_of_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    spies = _Spies(monkeypatch)
    _trace(model, torch.randn(INPUT), on=True)
    n = _bn_count(model)
    assert n == 19
    assert spies.saved_hits == spies.saved_calls == n
    assert spies.known == 2 * n  # each BatchNorm's output and its input (the conv output) skip two passes
    assert spies.found > 0  # ReLU min/max and block RMS reuse recorded rows


def _direct(model: nn.Module, x: Tensor) -> tuple[Trace, dict[str, Tensor]]:
    """Trace with the fast paths on, and the outputs of every recorded layer captured by hooks of
    this test during that same forward pass."""
    outs: dict[str, Tensor] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, Fork) or any(True for _ in m.children()):
            continue

        def hook(_m: nn.Module, _a: tuple[Any, ...], out: Any, name: str = name) -> None:
            assert name not in outs
            outs[name] = out.detach().clone()

        handles.append(m.register_forward_hook(hook))
    try:
        tr = _trace(model, x, on=True)
    finally:
        for h in handles:
            h.remove()
    return tr, outs


def test_fast_path_statistics_equal_direct_reductions(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    spies = _Spies(monkeypatch)
    tr, outs = _direct(model, torch.randn(INPUT))
    assert spies.saved_hits == _bn_count(model)  # the path under test did run
    assert [lr.name for lr in tr.layers] == list(outs)
    for lr in tr.layers:
        y = outs[lr.name]
        assert y.is_contiguous()
        v = y.reshape(-1)  # memory order
        d = v.double()
        n = v.numel()
        assert lr.mean == pytest.approx(float(d.mean()), rel=1e-5, abs=1e-6), lr.name
        assert lr.std == pytest.approx(float(d.std()), rel=1e-5, abs=1e-6), lr.name
        assert lr.rms == pytest.approx(float(d.square().mean().sqrt()), rel=1e-5, abs=1e-6), lr.name
        assert (lr.min, lr.max) == (float(v.min()), float(v.max())), lr.name
        assert lr.zero_fraction == pytest.approx(float((v == 0).double().mean()), abs=1e-12), lr.name
        picked = v[::max(1, math.ceil(n / HIST_SAMPLE))]
        hist = torch.histc(picked.clamp(HIST_LO, HIST_HI), HIST_BINS, HIST_LO, HIST_HI)
        assert lr.hist_counts == tuple(int(c) for c in hist.tolist()), lr.name
        assert (lr.nan_count, lr.inf_count) == (0, 0)
    bn_layers = [lr for lr in tr.layers if lr.type == "BatchNorm2d"]
    assert len(bn_layers) == 19 and all(abs(lr.mean) > 1e-3 for lr in bn_layers[:3])  # beta's share shows


def _same_trace(a: Trace, b: Trace) -> None:
    assert a.loss == pytest.approx(b.loss, rel=1e-6)
    assert [lr.name for lr in a.layers] == [lr.name for lr in b.layers]
    for la, lb in zip(a.layers, b.layers, strict=True):
        for key in ("mean", "std", "rms"):
            assert getattr(la, key) == pytest.approx(getattr(lb, key), rel=1e-5, abs=1e-6), (la.name, key)
        assert (la.min, la.max, la.zero_fraction, la.hist_counts) == (lb.min, lb.max, lb.zero_fraction, lb.hist_counts)
    assert [bl.name for bl in a.blocks] == [bl.name for bl in b.blocks]
    for ba, bb in zip(a.blocks, b.blocks, strict=True):
        for key in ("main_rms", "skip_rms", "grad_main", "grad_skip", "grad_total"):
            assert getattr(ba, key) == pytest.approx(getattr(bb, key), rel=1e-5), (ba.name, key)
    for pa, pb in zip(a.params, b.params, strict=True):
        assert pa.name == pb.name
        assert pa.weight_norm == pytest.approx(pb.weight_norm, rel=1e-6)
        assert pa.grad_norm == pytest.approx(pb.grad_norm, rel=1e-6)


def test_trace_is_the_same_with_the_fast_paths_off(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    x = torch.randn(INPUT)
    spies = _Spies(monkeypatch)
    fast = _trace(model, x, on=True)
    assert spies.saved_hits == 19 and spies.known == 38 and spies.found > 0
    spies.saved_hits = spies.known = spies.found = 0
    slow = _trace(model, x, on=False)
    assert spies.saved_hits == 0 and spies.known == 0 and spies.found == 0  # public reductions only
    _same_trace(fast, slow)


# -- the monitor's end-of-backward callback -----------------------------------------------------------------


def _train(model: nn.Module, on: bool) -> tuple[MonitorSeries, dict[str, int], dict[int, dict[str, float]]]:
    """Four training steps under ``monitor(every=1)`` with gradient accumulation (zero_grad on even
    steps only), an evaluation forward after each step, a frozen parameter and an unused one
    whose gradient is set by hand. Returns the series, which end-of-backward path ran, and
    gradient norms read directly after each backward."""
    used = {"engine": 0, "fallback": 0}
    real_callback, real_begin = fastpaths.engine_callback, Monitor._begin_backward

    def callback() -> Callable[[Callable[[], None]], None] | None:
        queue = real_callback()
        if queue is None:
            return None

        def counted(fn: Callable[[], None]) -> None:
            used["engine"] += 1
            queue(fn)

        return counted

    def begin(mon: Monitor, pending: Any) -> None:
        used["fallback"] += 1
        real_begin(mon, pending)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fastpaths, "engine_callback", callback)
        mp.setattr(Monitor, "_begin_backward", begin)
        series, direct = _loop(model, on)
    return series, used, direct


def _loop(model: nn.Module, on: bool) -> tuple[MonitorSeries, dict[int, dict[str, float]]]:
    model.register_parameter("unused", nn.Parameter(torch.ones(4)))
    model.conv1.weight.requires_grad_(False)  # type: ignore[union-attr]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(INPUT, generator=g), torch.randint(0, 10, (2,), generator=g)) for _ in range(4)]
    direct: dict[int, dict[str, float]] = {}
    with fastpaths.fast_paths(on), resviz.monitor(model, every=1) as mon:
        for step, (x, y) in enumerate(data):
            if step % 2 == 0:
                opt.zero_grad(set_to_none=False)
            model.unused.grad = torch.full((4,), float(step + 1))
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            direct[step] = {n: float(p.grad.norm()) for n, p in model.named_parameters() if p.grad is not None}
            opt.step()
            mon.log_loss(loss)
            model.eval()
            with torch.no_grad():
                model(x * 3.0)  # not a training step, and not measured into the last one
            model.train()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())
    return mon.series, direct


def test_monitor_engine_callback_and_public_fallback_agree() -> None:
    base = _model()
    fast, used_fast, direct_fast = _train(copy.deepcopy(base), True)
    slow, used_slow, direct_slow = _train(copy.deepcopy(base), False)
    assert used_fast == {"engine": 8, "fallback": 0}  # twice a step: queued again to run after DDP's
    assert used_slow == {"engine": 0, "fallback": 4}
    assert fast.loss_values == pytest.approx(slow.loss_values, rel=1e-6)
    assert fast.loss_steps == slow.loss_steps == (0, 1, 2, 3)
    for sf, ss in zip(fast.snapshots, slow.snapshots, strict=True):
        assert sf.step == ss.step
        assert sf.loss == pytest.approx(ss.loss, rel=1e-6)
        assert [(p.name, p.grad_norm is None) for p in sf.params] == [(p.name, p.grad_norm is None) for p in ss.params]
        for pf, ps in zip(sf.params, ss.params, strict=True):
            assert pf.weight_norm == pytest.approx(ps.weight_norm, rel=1e-6)
            if pf.grad_norm is not None:
                assert pf.grad_norm == pytest.approx(ps.grad_norm, rel=1e-6)
        assert len(sf.blocks) == len(ss.blocks) == 9
        for bf, bs in zip(sf.blocks, ss.blocks, strict=True):
            for key in ("main_rms", "skip_rms", "grad_main", "grad_skip", "grad_total"):
                assert getattr(bf, key) == pytest.approx(getattr(bs, key), rel=1e-5), (bf.name, key)
    for series, direct in ((fast, direct_fast), (slow, direct_slow)):
        for snap in series.snapshots:
            got = {p.name: p.grad_norm for p in snap.params if p.grad_norm is not None}
            assert got == pytest.approx(direct[snap.step], rel=1e-5)  # accumulated .grad, stale and frozen alike
            assert got["unused"] == pytest.approx(2.0 * (snap.step + 1))
            assert "conv1.weight" not in got


class _EngineWithoutQueue:
    """An autograd engine as some PyTorch might have it: everything but ``queue_callback``."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        if name == "queue_callback":
            raise AttributeError(name)
        return getattr(self._engine, name)


def test_monitor_falls_back_when_the_engine_lacks_queue_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = torch.autograd.Variable._execution_engine  # type: ignore[attr-defined]
    monkeypatch.setattr(torch.autograd.Variable, "_execution_engine", _EngineWithoutQueue(engine))
    with fastpaths.fast_paths(True):
        assert fastpaths.engine_callback() is None
    series, used, direct = _train(_model(), True)
    assert used == {"engine": 0, "fallback": 4}
    for snap in series.snapshots:
        assert {p.name: p.grad_norm for p in snap.params if p.grad_norm is not None} == pytest.approx(
            direct[snap.step], rel=1e-5)
