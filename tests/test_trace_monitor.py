"""``resviz.monitor`` inside an ordinary training loop."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import resviz
from resviz.model.resnet import build_model
from resviz.records import MonitorSeries


def test_monitor_records_every_kth_training_step() -> None:
    torch.manual_seed(0)
    model = build_model("resnet20", device="cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    fc_grads: dict[int, float] = {}
    losses: list[float] = []
    with resviz.monitor(model, every=2) as mon:
        for step in range(5):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            fc_grads[step] = float(model.fc.weight.grad.norm())  # type: ignore[union-attr]
            opt.step()
            mon.log_loss(loss)
            losses.append(float(loss.detach()))
            model.eval()
            with torch.no_grad():
                model(x)  # evaluation forwards are not training steps
            model.train()
    assert mon.steps == (0, 2, 4)
    series = mon.series
    assert series.loss_steps == (0, 1, 2, 3, 4)
    assert series.loss_values == pytest.approx(losses)
    for snap in series.snapshots:
        assert snap.loss == pytest.approx(losses[snap.step])
        assert len(snap.blocks) == 9
        for b in snap.blocks:
            assert b.grad_main and b.grad_skip and b.grad_total
            assert b.grad_total <= b.grad_main + b.grad_skip + 1e-6
        fc = next(p for p in snap.params if p.name == "fc.weight")
        assert fc.grad_norm == pytest.approx(fc_grads[snap.step], rel=1e-5)
    grid = series.matrix("grad_skip")
    assert len(grid) == 9 and all(len(row) == 3 for row in grid)
    back = MonitorSeries.from_dict(json.loads(json.dumps(mon.to_dict())))
    assert back == series
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_monitor_cleans_up_when_the_loop_raises() -> None:
    model = build_model("resnet20", device="cpu")
    model.relu.inplace = True  # type: ignore[union-attr]
    with pytest.raises(KeyError), resviz.monitor(model, every=1) as mon:
        model(torch.randn(2, 3, 32, 32)).sum().backward()
        raise KeyError("user bug")
    assert model.relu.inplace is True  # type: ignore[union-attr]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert mon.steps == (0,)


def test_monitor_rejects_bad_arguments() -> None:
    with pytest.raises(resviz.ResvizError, match="every"), resviz.monitor(torch.nn.Linear(2, 2), every=0):
        pass
