"""One measurement per model at a time, and modules that run more than once per forward.

A second trace, monitor or static pass on a model that one already holds is refused at once with
one line (never queued, never mixed); a module or block called several times in one forward gets
one record per call, each equal to a direct computation of that call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import resviz
from resviz import api
from resviz.errors import ResvizError
from resviz.measure.ownership import holder
from resviz.model.blocks import PostActBlock
from resviz.spec import BlockKind, Shortcut

HELD = "already being"


class _Gate(nn.Module):
    """Stops its forward on tensors of one device type until released, so a second call can be
    made while a trace (``cpu``) or a static pass (``meta``) is inside."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__()
        self.device = device
        self.entered, self.go = threading.Event(), threading.Event()

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == self.device:
            self.entered.set()
            assert self.go.wait(30)
        return x


def _gated(device: str = "cpu") -> tuple[nn.Module, _Gate]:
    gate = _Gate(device)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), gate, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3))
    return model, gate


def test_a_second_thread_tracing_the_same_model_is_refused_and_the_first_is_not_mixed() -> None:
    torch.manual_seed(0)
    model, gate = _gated()
    grads = [torch.full_like(p, 7.0) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g
    done: list[resviz.Trace] = []
    first = threading.Thread(target=lambda: done.append(resviz.trace(model, input_size=(2, 3, 8, 8))))
    first.start()
    assert gate.entered.wait(30)
    with pytest.raises(ResvizError, match=f"Sequential is {HELD} traced") as err:
        resviz.trace(model, input_size=(2, 3, 8, 8))
    assert "\n" not in str(err.value)
    gate.go.set()
    first.join(30)
    (trace,) = done
    assert [(lr.name, lr.call) for lr in trace.layers] == [(str(i), 1) for i in range(5)]  # one pass, not two
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))
    assert holder(model) is None and holder(model[0]) is None


def test_monitor_summary_and_part_of_a_held_model_are_refused_while_a_trace_runs() -> None:
    model, gate = _gated()
    worker = threading.Thread(target=lambda: resviz.trace(model, input_size=(2, 3, 8, 8)))
    worker.start()
    assert gate.entered.wait(30)
    try:
        with pytest.raises(ResvizError, match=f"{HELD} traced"), resviz.monitor(model):
            pass
        with pytest.raises(ResvizError, match=f"{HELD} traced"):
            resviz.summarize(model, input_size="1x3x8x8")
        with pytest.raises(ResvizError, match=f"{HELD} traced"):  # a part of the traced model
            resviz.trace(model[0], inputs=torch.randn(2, 3, 8, 8))
    finally:
        gate.go.set()
        worker.join(30)
    assert len(resviz.trace(model, input_size=(2, 3, 8, 8)).layers) == 5  # released once done


def test_a_trace_inside_a_monitored_loop_is_refused_and_the_monitor_keeps_counting() -> None:
    model = resviz.build_model("resnet20")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with resviz.monitor(model, every=1) as mon:
        for _ in range(2):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with pytest.raises(ResvizError, match=f"resnet20 is {HELD} monitored"):
                resviz.trace(model, input_size=(2, 3, 32, 32))
        assert holder(model) is not None
    assert mon.steps == (0, 1)
    assert holder(model) is None
    assert len(resviz.trace(model, input_size=(2, 3, 32, 32)).blocks) == 9


def test_a_failed_trace_releases_the_model() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    with pytest.raises(ResvizError, match="input channels"):
        resviz.trace(model, input_size=(2, 5, 8, 8))
    assert holder(model) is None
    assert len(resviz.trace(model, input_size=(2, 3, 8, 8)).layers) == 2


class _Reused(nn.Module):
    """One convolution applied twice (shared weights), then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 3, 3, padding=1), nn.Linear(3, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(torch.relu(self.conv(x))).mean((2, 3)))


def test_a_reused_module_has_one_row_per_call_each_equal_to_a_direct_computation() -> None:
    torch.manual_seed(0)
    model, x = _Reused(), torch.randn(2, 3, 8, 8)
    tr = resviz.trace(model, inputs=x)
    rows = [lr for lr in tr.layers if lr.name == "conv"]
    assert [lr.call for lr in rows] == [1, 2] and [lr.label for lr in rows] == ["conv", "conv (call 2)"]
    with torch.no_grad():
        first = model.conv(x)
        second = model.conv(torch.relu(first))
    for lr, y in zip(rows, (first, second), strict=True):
        assert lr.std == pytest.approx(float(y.std()), rel=1e-4)
        assert lr.max == pytest.approx(float(y.max()), rel=1e-5)
    assert [lr.params for lr in rows] == [84, 0]  # the shared weights on the first call only
    assert any(n.startswith("conv runs 2 times") for n in tr.notes)
    summ = resviz.summarize(model, input_size="1x3x8x8")
    assert [lr.call for lr in summ.layers if lr.name == "conv"] == [1, 2]
    assert summ.total_params == sum(lr.params for lr in summ.layers) == 84 + 16
    assert sum(s.params for s in summ.stages) == summ.total_params
    assert any(n.startswith("conv runs 2 times") for n in summ.notes)


class _TwiceBlock(nn.Module):
    """A stem, then one post-activation basic block applied twice."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = PostActBlock(BlockKind.BASIC, 8, 8, 1, Shortcut.B, inner=8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.block(self.block(self.stem(x))).mean((2, 3)))


def test_a_reused_block_has_one_record_per_call_with_that_calls_gradient() -> None:
    torch.manual_seed(0)
    model, x = _TwiceBlock(), torch.randn(2, 3, 8, 8)
    y = torch.randint(0, 4, (2,))
    tr = resviz.trace(model, inputs=x, targets=y)
    assert [(b.name, b.call) for b in tr.blocks] == [("block", 1), ("block", 2)]
    # the gradient of the loss at each call's input, computed directly
    model.train()
    h0 = model.stem(x)
    h1 = model.block(h0)
    loss = nn.functional.cross_entropy(model.fc(model.block(h1).mean((2, 3))), y)
    g0, g1 = torch.autograd.grad(loss, (h0, h1))
    for b, g in zip(tr.blocks, (g0, g1), strict=True):
        assert b.grad_total == pytest.approx(float(g.norm()), rel=1e-4)
        assert b.grad_main is not None and b.grad_skip is not None
    assert any(n.startswith("block runs 2 times") for n in tr.notes)
    assert not any(n.startswith("block.conv1 runs") for n in tr.notes)  # said once, by the block


def test_a_second_monitor_on_a_monitored_model_is_refused() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    with (
        resviz.monitor(model),
        pytest.raises(ResvizError, match=f"Sequential is {HELD} monitored"),
        resviz.monitor(model),
    ):
        pass
    with resviz.monitor(model):  # released by the first on exit
        assert holder(model) is not None


def _trace_refused_while(work: Callable[[], object], model: nn.Module, gate: _Gate, held: str) -> None:
    """Run ``work`` in a thread until it is inside ``gate``; a trace of ``model`` then is refused,
    naming what holds it."""
    worker = threading.Thread(target=work)
    worker.start()
    assert gate.entered.wait(30)
    try:
        with pytest.raises(ResvizError, match=f"Sequential is {HELD} {held}"):
            resviz.trace(model, input_size=(2, 3, 8, 8))
    finally:
        gate.go.set()
        worker.join(30)


def test_a_trace_while_the_counters_are_reconciled_is_refused() -> None:
    """Reconciling runs real passes (fvcore, torchinfo, FlopCounterMode): a trace meanwhile would
    record them as its own calls."""
    pytest.importorskip("fvcore")
    model, gate = _gated()
    _trace_refused_while(lambda: api.reconcile(model, input_size="1x3x8x8"), model, gate, "reconciled")
    assert [lr.call for lr in resviz.trace(model, input_size=(2, 3, 8, 8)).layers] == [1] * 5


def test_a_trace_while_another_thread_summarizes_the_model_is_refused_as_such() -> None:
    """The static pass swaps the parameters for meta stand-ins: a trace meanwhile must say the model
    is being summarized, not that it lives on the meta device."""
    model, gate = _gated("meta")
    _trace_refused_while(lambda: resviz.summarize(model, input_size="1x3x8x8"), model, gate, "summarized")
    assert all(p.device.type == "cpu" for p in model.parameters())
