"""Per-layer statistics in the monitor: every leaf module's output at each recorded step, equal to
a direct computation on the tensors a test hook saved, NaN and Inf counted without a second pass."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz
from resviz.measure import fastpaths
from resviz.records import MonitorSeries


def _saving_hooks(model: nn.Module, saved: dict[str, Tensor]) -> list[Any]:
    def hook(name: str) -> Any:
        def save(_m: nn.Module, _a: Any, out: Any) -> None:
            if isinstance(out, Tensor):
                saved.setdefault(name, out.detach().double().clone())
        return save
    return [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children())]


def _check(layer: Any, t: Tensor) -> None:
    scale = float(t.square().mean().sqrt()) or 1.0
    for got, want in ((layer.mean, t.mean()), (layer.std, t.std()), (layer.rms, t.square().mean().sqrt()),
                      (layer.min, t.min()), (layer.max, t.max())):
        assert got == pytest.approx(float(want), abs=1e-5 * scale), layer.name
    assert layer.zero_fraction == pytest.approx(float((t == 0).double().mean()), abs=1e-6), layer.name
    assert layer.output_shape == tuple(t.shape)


@pytest.mark.parametrize("fast", [True, False])
def test_every_layer_of_a_recorded_step_equals_a_direct_computation(fast: bool) -> None:
    torch.manual_seed(0)
    model = resviz.build_model("resnet20", device="cpu").train()
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    saved: dict[str, Tensor] = {}
    with fastpaths.fast_paths(fast), resviz.monitor(model, every=2) as mon:
        handles = _saving_hooks(model, saved)
        F.cross_entropy(model(x), y).backward()
        for h in handles:
            h.remove()
        for _ in range(2):
            F.cross_entropy(model(x), y).backward()
    series = mon.series
    assert series.steps == (0, 2)
    first = series.snapshots[0]
    assert [lr.name for lr in first.layers] == list(saved)
    for lr in first.layers:
        _check(lr, saved[lr.name])
        assert lr.nan_count == lr.inf_count == 0
        assert sum(lr.hist_counts) == min(saved[lr.name].numel(), 8192)
    assert first.layer("layer1.0.conv1").block == "layer1.0"
    assert [lr.name for lr in series.snapshots[1].layers] == list(saved)


class Poison(nn.Module):
    """Writes 3 NaN and 2 Inf into its output (a leaf the test can count)."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.clone()
        x[0, 0, 0, :3] = float("nan")
        x[1, 1, 1, :2] = float("inf")
        return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_and_inf_are_counted_in_the_recorded_step_itself(dtype: torch.dtype) -> None:
    """float32 on CPU counts only the chunks that show non-finite partial sums; float64 takes the
    generic reductions: both count exactly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), Poison(), nn.Flatten(), nn.Linear(4 * 64, 5))
    model = model.to(dtype).train()
    x = torch.randn(2, 3, 8, 8, dtype=dtype)
    saved: dict[str, Tensor] = {}
    handles = _saving_hooks(model, saved)
    with resviz.monitor(model, every=1) as mon:
        model(x).sum().backward()
    for h in handles:
        h.remove()
    layers = {lr.name: lr for lr in mon.series.snapshots[0].layers}
    for name, t in saved.items():
        assert (layers[name].nan_count, layers[name].inf_count) == (int(t.isnan().sum()), int(t.isinf().sum())), name
    assert (layers["2"].nan_count, layers["2"].inf_count) == (3, 2)
    assert layers["4"].nan_count > 0 and layers["0"].nan_count == layers["0"].inf_count == 0


def test_layers_false_records_blocks_and_parameters_only() -> None:
    model = resviz.build_model("resnet20", device="cpu").train()
    with resviz.monitor(model, every=1, layers=False) as mon:
        model(torch.randn(2, 3, 16, 16)).sum().backward()
    snap = mon.series.snapshots[0]
    assert snap.layers == () and len(snap.blocks) == 9 and snap.params


def test_layer_statistics_survive_the_json_round_trip() -> None:
    model = resviz.build_model("resnet20", device="cpu").train()
    with resviz.monitor(model, every=1) as mon:
        model(torch.randn(2, 3, 16, 16)).sum().backward()
    series = mon.series
    again = MonitorSeries.from_dict(series.to_dict())
    assert again == series and len(again.snapshots[0].layers) == 70


@pytest.mark.parametrize("fast", [True, False])
def test_an_output_recorded_twice_gets_the_same_statistics(fast: bool) -> None:
    """``nn.Identity`` returns its input: its row is a copy of the input's (fast paths) or reduced
    again (without them); either way equal to a direct computation, also after a derived ReLU."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Identity(), nn.ReLU(), nn.Identity(), nn.Flatten(),
                          nn.Linear(4 * 64, 3))
    x = torch.randn(2, 3, 8, 8)
    saved: dict[str, Tensor] = {}
    handles = _saving_hooks(model, saved)
    with fastpaths.fast_paths(fast):
        tr = resviz.trace(model, inputs=x)
    for h in handles:
        h.remove()
    for lr in tr.layers:
        _check(lr, saved[lr.name])
    assert tr.layer("1").hist_counts == tr.layer("0").hist_counts and tr.layer("3").min == 0.0
