"""``resviz.monitor`` and ``resviz.trace`` on models under ``torch.compile``.

The compiled twin of a model must record the numbers the eager model records (same weights, same
batches), while the steps the monitor does not record keep running the compiled graph. A counting
backend around ``aot_eager`` (fast to compile on CPU; the same kernels as eager) says how often
dynamo compiled a graph and how often a compiled graph ran.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz
from resviz.measure.compiled import EagerSwitch, eager, is_compiled, original
from resviz.records import MonitorSeries, Trace

torch_dynamo = pytest.importorskip("torch._dynamo")
from tests.compiling import Counting  # noqa: E402

REL = 1e-4
STEPS, EVERY = 6, 3


def _model() -> nn.Module:
    torch.manual_seed(0)
    spec = resviz.ResNetSpec(name="t_compile", block="basic", layers=(2, 2), widths=(8, 16), stem="cifar",
                             stem_width=8, num_classes=10)
    model = resviz.build_model(spec, device="cpu")
    model.relu.inplace = True  # type: ignore[union-attr]  # the monitor turns it off, and back on
    return model


def _batches() -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(4, 3, 8, 8, generator=gen), torch.randint(0, 10, (4,), generator=gen)) for _ in range(STEPS)]


def _train(model: nn.Module, call: Callable[[Tensor], Tensor], monitored: Any,
           compile_inside: Callable[[nn.Module], Callable[[Tensor], Tensor]] | None = None,
           loss: Callable[[Tensor, Tensor], Tensor] | None = None) -> MonitorSeries:
    """``STEPS`` SGD steps calling ``call``, monitored through ``monitored``; ``compile_inside``
    compiles the model once the monitor is attached and gives what to call; ``loss`` computes the
    loss from the batch instead (the call included)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with resviz.monitor(monitored, every=EVERY) as mon:
        if compile_inside is not None:
            call = compile_inside(model)
        for x, y in _batches():
            opt.zero_grad()
            value = loss(x, y) if loss is not None else F.cross_entropy(call(x), y)
            value.backward()
            opt.step()
            mon.log_loss(value)
    return mon.series


def _assert_same_series(got: MonitorSeries, want: MonitorSeries) -> None:
    assert got.model == want.model == "t_compile"
    assert [s.step for s in got.snapshots] == [s.step for s in want.snapshots] == [0, 3]
    assert got.loss_values == pytest.approx(want.loss_values, rel=REL)
    for g, w in zip(got.snapshots, want.snapshots, strict=True):
        assert [b.name for b in g.blocks] == [b.name for b in w.blocks] and len(g.blocks) == 4
        for gb, wb in zip(g.blocks, w.blocks, strict=True):
            for key in ("grad_main", "grad_skip", "grad_total", "main_rms", "skip_rms"):
                assert getattr(gb, key) == pytest.approx(getattr(wb, key), rel=REL), (g.step, gb.name, key)
        assert [p.name for p in g.params] == [p.name for p in w.params]  # no "_orig_mod." prefix
        for gp, wp in zip(g.params, w.params, strict=True):
            assert gp.weight_norm == pytest.approx(wp.weight_norm, rel=REL), gp.name
            assert gp.grad_norm == pytest.approx(wp.grad_norm, rel=REL), gp.name


def _assert_intact(*modules: nn.Module) -> None:
    for root in modules:
        for m in root.modules():
            assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    for m in modules:
        assert original(m).relu.inplace is True  # type: ignore[union-attr]
    assert torch_dynamo.eval_frame._stance.stance == "default"


def test_monitor_on_a_compiled_model_equals_eager_and_keeps_the_graph() -> None:
    eager_model = _model()
    model = copy.deepcopy(eager_model)
    backend = Counting()
    compiled = torch.compile(model, backend=backend)
    assert is_compiled(compiled) and original(compiled) is model
    want = _train(eager_model, eager_model, eager_model)
    got = _train(model, compiled, compiled)
    _assert_same_series(got, want)
    # steps 0 and 3 ran eagerly; 1, 2, 4, 5 ran the one graph, compiled once, at step 1
    assert (backend.compiles, backend.runs) == (1, STEPS - 2)
    _assert_intact(compiled)
    x, y = _batches()[0]
    F.cross_entropy(compiled(x), y).backward()  # after the monitor: the compiled graph again
    assert (backend.compiles, backend.runs) == (1, STEPS - 1)


def test_model_compiled_inside_the_monitor_equals_eager_and_keeps_the_graph() -> None:
    eager_model = _model()
    model = copy.deepcopy(eager_model)
    backend = Counting()
    made: list[nn.Module] = []

    def compile_now(m: nn.Module) -> Callable[[Tensor], Tensor]:
        made.append(torch.compile(m, backend=backend))
        return made[0]

    want = _train(eager_model, eager_model, eager_model)
    got = _train(model, model, model, compile_inside=compile_now)
    _assert_same_series(got, want)
    assert (backend.compiles, backend.runs) == (1, STEPS - 2)
    _assert_intact(model, made[0])
    x, _y = _batches()[0]
    made[0](x)
    assert (backend.compiles, backend.runs) == (1, STEPS - 1)


def test_model_compiled_in_place_equals_eager() -> None:
    eager_model = _model()
    model = copy.deepcopy(eager_model)
    backend = Counting()
    model.compile(backend=backend)  # nn.Module.compile: the module's own call is compiled
    want = _train(eager_model, eager_model, eager_model)
    got = _train(model, model, model)
    _assert_same_series(got, want)
    assert (backend.compiles, backend.runs) == (1, STEPS - 2)
    _assert_intact(model)


@pytest.mark.parametrize("inner", ["module", "compiled wrapper"])
def test_model_called_from_a_compiled_function_equals_eager(inner: str) -> None:
    """The whole loss computation compiled, calling the module or its own compiled wrapper: the
    monitor's pre-hook runs inside compiled code and sets the stance a step ahead."""
    eager_model = _model()
    model = copy.deepcopy(eager_model)
    net = model if inner == "module" else torch.compile(model, backend="aot_eager")
    backend = Counting()

    @torch.compile(backend=backend)
    def step_loss(x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(net(x), y)

    want = _train(eager_model, eager_model, eager_model)
    got = _train(model, lambda x: x, net, loss=step_loss)
    _assert_same_series(got, want)
    warm = backend.compiles
    assert warm <= 2 and backend.runs == warm * (STEPS - 2)  # a graph break may split it in two
    _assert_intact(net)


def test_no_recompilation_after_warm_up_over_many_steps() -> None:
    model = _model()
    backend = Counting()
    compiled = torch.compile(model, backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = _batches()[0]
    with resviz.monitor(compiled, every=2) as mon:
        for _ in range(8):
            opt.zero_grad()
            F.cross_entropy(compiled(x), y).backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                compiled(x)  # evaluation passes are not steps
            model.train()
    assert mon.steps == (0, 2, 4, 6)
    assert backend.compiles == 2  # one training graph, one evaluation graph, both at warm-up
    assert backend.runs == 4 + 8  # 4 unrecorded training steps, 8 evaluation passes


def _same_trace(got: Trace, want: Trace) -> None:
    assert got.model == want.model == "t_compile"
    assert got.loss == pytest.approx(want.loss, rel=REL)
    assert [lr.name for lr in got.layers] == [lr.name for lr in want.layers] and got.layers
    for g, w in zip(got.layers, want.layers, strict=True):
        for key in ("mean", "std", "rms", "min", "max", "zero_fraction"):
            assert getattr(g, key) == pytest.approx(getattr(w, key), rel=REL, abs=1e-6), (g.name, key)
        assert g.output_shape == w.output_shape and g.macs == w.macs and g.params == w.params
    assert [b.name for b in got.blocks] == [b.name for b in want.blocks] and len(got.blocks) == 4
    for g, w in zip(got.blocks, want.blocks, strict=True):
        for key in ("grad_main", "grad_skip", "grad_total", "main_rms", "skip_rms"):
            assert getattr(g, key) == pytest.approx(getattr(w, key), rel=REL), (g.name, key)
    for g, w in zip(got.params, want.params, strict=True):
        assert (g.name, g.grad_norm) == (w.name, pytest.approx(w.grad_norm, rel=REL))


def test_trace_of_a_compiled_model_equals_the_original_and_leaves_it_intact() -> None:
    model = _model()
    backend = Counting()
    compiled = torch.compile(model, backend=backend)
    x, _y = _batches()[0]
    compiled(x)  # compiled and run once before the trace
    before = {k: v.clone() for k, v in model.state_dict().items()}
    want = resviz.trace(copy.deepcopy(model), inputs=x)
    got = resviz.trace(compiled, inputs=x)
    _same_trace(got, want)
    assert (backend.compiles, backend.runs) == (1, 1)  # the trace ran eagerly
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    _assert_intact(compiled)
    compiled(x)
    assert (backend.compiles, backend.runs) == (1, 2)


def test_a_monitored_compiled_model_refuses_a_trace_of_its_original() -> None:
    model = _model()
    compiled = torch.compile(model, backend="aot_eager")
    with resviz.monitor(compiled, every=1), pytest.raises(resviz.ResvizError, match="already being monitored"):
        resviz.trace(model, input_size=(2, 3, 8, 8))
    with resviz.monitor(model, every=1), pytest.raises(resviz.ResvizError, match="already being monitored"):
        resviz.trace(compiled, input_size=(2, 3, 8, 8))


def test_eager_helpers_restore_the_stance() -> None:
    stance = torch_dynamo.eval_frame._stance
    with eager():
        assert torch_dynamo.eval_frame._stance.stance == "force_eager"
    assert torch_dynamo.eval_frame._stance is stance
    switch = EagerSwitch()
    switch.set(True)
    switch.set(True)
    assert switch.on and torch_dynamo.eval_frame._stance.stance == "force_eager"
    switch.set(False)
    switch.set(False)
    assert not switch.on and torch_dynamo.eval_frame._stance.stance == "default"


def test_trace_of_a_model_compiled_in_place_equals_eager() -> None:
    model = _model()
    want = resviz.trace(copy.deepcopy(model), input_size=(2, 3, 8, 8))
    backend = Counting()
    model.compile(backend=backend)
    got = resviz.trace(model, input_size=(2, 3, 8, 8))
    _same_trace(got, want)
    assert backend.compiles == 0  # the traced pass ran eagerly
    _assert_intact(model)
