"""Layer statistics against numbers computed in the test: histogram, both reduction paths, NaN/Inf.

The tracer has two reduction paths: chunked CPU float32 (``_rows_cpu``) and the general one used
for CUDA and reduced precision. The general path is forced here on CPU by feeding float64 and
bfloat16 tensors, by bf16 autocast, and by monkeypatching the path selector for float32.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import resviz
from resviz.measure import stats as stats_module
from resviz.measure.stats import HIST_SAMPLE, LayerStatsBuffer, decode

#: As documented (stats.py, LayerStats): 48 equal bins over [-6, 6]; values outside the outer
#: edges are counted in the outer bins.
DOC_EDGES = np.linspace(-6.0, 6.0, 49)


def _expected_hist(values: Tensor) -> list[int]:
    """numpy's histogram over the documented edges, outer values clamped into the outer bins."""
    v = np.clip(values.detach().double().reshape(-1).numpy(), -6.0, 6.0)
    counts, _ = np.histogram(v, bins=DOC_EDGES)
    return [int(c) for c in counts]


def _systematic_sample(y: Tensor) -> Tensor:
    """Every ceil(n / HIST_SAMPLE)-th value in memory order, as the docstring of HIST_SAMPLE says."""
    v = y.detach().contiguous().reshape(-1)
    step = max(1, math.ceil(v.numel() / HIST_SAMPLE))
    return v[::step]


def _check_moments(got: object, y: Tensor, rel: float = 1e-4, abs_: float = 1e-5) -> None:
    """mean, std (unbiased, as ``Tensor.std``), min, max, RMS and exact-zero fraction of ``y``."""
    d = y.detach().double()
    assert got.mean == pytest.approx(float(d.mean()), rel=rel, abs=abs_)  # type: ignore[attr-defined]
    assert got.std == pytest.approx(float(d.std()), rel=rel, abs=abs_)  # type: ignore[attr-defined]
    assert got.min == pytest.approx(float(d.min()), rel=rel, abs=abs_)  # type: ignore[attr-defined]
    assert got.max == pytest.approx(float(d.max()), rel=rel, abs=abs_)  # type: ignore[attr-defined]
    assert got.rms == pytest.approx(float(d.square().mean().sqrt()), rel=rel, abs=abs_)  # type: ignore[attr-defined]
    assert got.zero_fraction == pytest.approx(float((d == 0).double().mean()), abs=1e-9)  # type: ignore[attr-defined]


def _mixed(shape: tuple[int, ...] = (3, 5, 7, 11), seed: int = 0) -> Tensor:
    """Negatives, exact zeros and positives, inside and outside [-6, 6], away from bin edges."""
    n = math.prod(shape)
    g = torch.Generator().manual_seed(seed)
    bins = torch.randint(0, 48, (n,), generator=g)
    centre = -6.0 + 0.25 * bins.double() + 0.125
    v = centre + (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.1
    kind = torch.rand(n, generator=g)
    v[kind < 0.2] = 0.0
    v[(kind >= 0.2) & (kind < 0.25)] = -9.5
    v[(kind >= 0.25) & (kind < 0.3)] = 7.75
    return v.reshape(shape)


def _decoded(y: Tensor) -> object:
    buf = LayerStatsBuffer()
    buf.add("y", y)
    rows = buf.device_rows()
    assert rows is not None
    return decode(rows[0].tolist(), y.numel())


# ----------------------------------------------------------------------------- histogram edges
def test_histogram_edges_are_the_documented_ones() -> None:
    """48 bins of width 0.25 from -6 to 6 (stats.py), not a shifted or extra bin."""
    tr = resviz.trace(nn.Sequential(nn.Conv2d(3, 2, 1)), inputs=torch.randn(2, 3, 4, 4),
                      loss=lambda out, _t: out.square().mean())
    (layer,) = tr.layers
    assert len(layer.hist_edges) == 49 and len(layer.hist_counts) == 48
    np.testing.assert_allclose(np.array(layer.hist_edges), DOC_EDGES, rtol=0, atol=1e-12)


# ------------------------------------------------------------- the general (non-CPU-float32) path
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_general_path_statistics_on_negatives_zeros_and_positives(dtype: torch.dtype) -> None:
    """The path CUDA and reduced precision use: every number, the zero fraction (negatives are
    not zeros) and the histogram against a direct computation on the same values."""
    y = _mixed().to(dtype)
    assert (y < 0).any() and (y == 0).any() and (y > 0).any()
    m = _decoded(y)
    _check_moments(m, y, rel=1e-3, abs_=1e-4)
    assert list(m.hist) == _expected_hist(y)  # type: ignore[attr-defined]


def test_float64_model_statistics() -> None:
    """A float64 model traces like any other, with statistics equal to a direct computation."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    tr = resviz.trace(model, inputs=x)
    with torch.no_grad():
        y = model[0](x)
    _check_moments(tr.layer("0"), y, rel=1e-5, abs_=1e-6)


def test_general_path_forced_for_float32_by_the_path_selector(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 on CPU routed through the general path (selector monkeypatched), then the CPU path:
    both agree with the direct computation, including the histogram of a sampled large tensor."""
    small = _mixed().float()
    # more than one CPU chunk (2**17 values), with a sampling step (18) that does not divide the chunk
    big = _mixed((3, 7, 101, 67), seed=1).float()
    for y in (small, big):
        m_cpu = _decoded(y)
        _check_moments(m_cpu, y)
        assert list(m_cpu.hist) == _expected_hist(_systematic_sample(y))  # type: ignore[attr-defined]
    monkeypatch.setattr(stats_module, "_fast", lambda _y: False)
    for y in (small, big):
        m_gen = _decoded(y)
        _check_moments(m_gen, y)
        assert list(m_gen.hist) == _expected_hist(_systematic_sample(y))  # type: ignore[attr-defined]


# ----------------------------------------------------------------------- through resviz.trace
class Gain(nn.Module):
    """A parameter-free leaf that spreads values past the histogram's outer edges."""

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        return x * self.k


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), Gain(6.0), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4),
    )


@contextmanager
def _outputs(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Every leaf module's output, captured with this test's own forward hooks."""
    out: dict[str, Tensor] = {}
    handles = []
    for name, m in model.named_modules():
        if any(True for _ in m.children()):
            continue

        def hook(_m: nn.Module, _a: tuple[object, ...], y: object, name: str = name) -> None:
            if isinstance(y, Tensor):
                out[name] = y.detach().clone()

        handles.append(m.register_forward_hook(hook))
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (4, 3, 32, 32)], ids=["whole-tensor", "sampled"])
@pytest.mark.parametrize("dtype", [None, "bf16"])
def test_trace_histogram_equals_numpy_histogram_of_the_captured_output(
    shape: tuple[int, ...], dtype: str | None,
) -> None:
    """hist_counts of every layer = numpy.histogram of that layer's output (systematic sample of
    at most HIST_SAMPLE values when larger), with the other statistics, in float32 and bf16."""
    model = _net()
    x = torch.randn(*shape)
    tr = resviz.trace(model, inputs=x, dtype=dtype)
    with _outputs(model) as outs, torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        model(x)
    assert set(outs) == {lr.name for lr in tr.layers}
    gain = outs["1"]
    assert float(gain.abs().max()) > 6.0  # the outer bins really collect clamped values
    for lr in tr.layers:
        y = outs[lr.name]
        assert list(lr.hist_counts) == _expected_hist(_systematic_sample(y)), lr.name
        _check_moments(lr, y, rel=1e-3 if dtype else 1e-4, abs_=1e-4)


# -------------------------------------------------------------------------- NaN and Inf counts
class Poison(nn.Module):
    """Writes exactly 3 NaN, one +Inf and one -Inf into a copy of its input."""

    def forward(self, x: Tensor) -> Tensor:
        y = x.clone()
        flat = y.view(-1)
        flat[[1, 17, 40]] = float("nan")
        flat[5] = float("inf")
        flat[63] = float("-inf")
        return y


@pytest.mark.parametrize("dtype", [None, "bf16"])
def test_exact_nan_and_inf_counts(dtype: str | None) -> None:
    """nan_count / inf_count are counts, not flags: 3 NaN and 2 Inf where they are written, and in
    every later layer exactly what isnan / isinf count in the captured outputs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Poison(), nn.Conv2d(4, 4, 1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x = torch.randn(2, 3, 8, 8)
    tr = resviz.trace(model, inputs=x, dtype=dtype)
    with _outputs(model) as outs, torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        model(x)
    poison = tr.layer("1")
    assert (poison.nan_count, poison.inf_count) == (3, 2)
    assert (tr.layer("0").nan_count, tr.layer("0").inf_count) == (0, 0)
    for lr in tr.layers:
        y = outs[lr.name]
        assert lr.nan_count == int(torch.isnan(y).sum()), lr.name
        assert lr.inf_count == int(torch.isinf(y).sum()), lr.name
    assert any(int(torch.isnan(outs[n]).sum()) > 3 for n in ("2", "3"))  # counts really grow downstream
    assert tr.notes[0].startswith("first NaN/Inf in 1") and "3 NaN, 2 Inf" in tr.notes[0]


# ------------------------------------------------------- resviz models: the deferred, reusing path
@pytest.mark.parametrize("name", ["resnet20", "preact_resnet18"])
def test_every_layer_of_a_resviz_model_matches_its_captured_output(name: str) -> None:
    """On resviz's own blocks the tracer reuses BatchNorm's saved batch statistics for sums and
    derives a ReLU's min/max from its input's; every layer's numbers must still equal a direct
    reduction of the output captured here."""
    torch.manual_seed(0)
    model = resviz.build_model(name, device="cpu")
    with torch.no_grad():  # BatchNorm's affine parameters away from their (1, 0) initialisation
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 16, 16)
    tr = resviz.trace(model, inputs=x)
    with _outputs(model) as outs:
        model(x)
    names = {lr.name for lr in tr.layers}
    assert names <= set(outs) and len(names) > 40
    kinds = {lr.type for lr in tr.layers}
    assert {"BatchNorm2d", "ReLU", "Conv2d"} <= kinds
    for lr in tr.layers:
        y = outs[lr.name]
        _check_moments(lr, y, rel=2e-4, abs_=2e-5)
        assert list(lr.hist_counts) == _expected_hist(_systematic_sample(y)), lr.name
        assert lr.nan_count == lr.inf_count == 0
