"""Paths study (Veit et al. 2016, arXiv:1605.06431, Sec. 5): counts, gated gradients, records, figures.

The gated gradients are checked against a computation written here independently: instead of
zeroing gradients at the fork with tensor hooks, the test detaches one operand of each block's
residual addition (a forward pre-hook on ``ResidualAdd``), so autograd itself only follows the
kept branch.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resviz.errors import ResvizError
from resviz.model.blocks import ResidualBlock
from resviz.model.resnet import build_model
from resviz.records.paths import PathsStudy
from resviz.render.report.study_paths import paths_figures, paths_findings
from resviz.studies.held import held
from resviz.studies.paths import (
    chained_gradients,
    effective_range,
    gated_gradients,
    paths_study,
    residual_blocks,
)
from resviz.zoo import derive, get_spec

TINY = {"layers": [2, 1, 1], "widths": [4, 8, 8], "stem_width": 4, "name": "tiny"}


def tiny(shortcut: str = "A", preact: bool = False, plain: bool = False) -> nn.Module:
    torch.manual_seed(0)
    spec = derive(get_spec("resnet20"), {**TINY, "shortcut": shortcut, "preact": preact})
    return build_model(spec, device="cpu", plain=plain).double()


def data(batch: int = 3, seed: int = 1) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 8, 8, generator=g, dtype=torch.double), torch.randint(0, 10, (batch,), generator=g)


def blocks_of(model: nn.Module) -> list[tuple[str, ResidualBlock]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ResidualBlock)]


def detached_gradient(model: nn.Module, x: Tensor, y: Tensor, through_main: set[int]) -> Tensor:
    """dL/dx with autograd following, at block i, the main operand if i is in ``through_main``
    and the shortcut operand otherwise (the other operand detached): written without resviz."""
    handles = []
    for i, (_, block) in enumerate(blocks_of(model)):
        def pre(_m: nn.Module, args: tuple[Any, ...], keep_main: bool = i in through_main) -> tuple[Tensor, Tensor]:
            main, skip = args
            return (main, skip.detach()) if keep_main else (main.detach(), skip)

        assert block.add is not None
        handles.append(block.add.register_forward_pre_hook(pre))
    try:
        model.train()
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xx), y), xx)
    finally:
        for h in handles:
            h.remove()
    return g


def gated(model: nn.Module, x: Tensor, y: Tensor, patterns: Sequence[Sequence[int]]) -> list[Tensor]:
    with held(model, "tiny", inplace=True):
        model.train()
        return list(gated_gradients(model, residual_blocks(model, "tiny", "paths"), x, y, patterns))


def chained(model: nn.Module, x: Tensor, y: Tensor, patterns: Sequence[Sequence[int]]) -> list[Tensor]:
    with held(model, "tiny", inplace=True):
        model.train()
        return list(chained_gradients(model, residual_blocks(model, "tiny", "paths"), x, y, patterns))


def full_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    model.train()
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xx), y), xx)
    return g


def state(model: nn.Module) -> dict[str, Any]:
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "req": [p.requires_grad for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "hooks": [len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()],
    }


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    tensors = a["tensors"].keys() == b["tensors"].keys() and all(
        torch.equal(a["tensors"][k], b["tensors"][k]) for k in a["tensors"])
    grads = all((u is None and v is None) or (u is not None and v is not None and torch.equal(u, v))
                for u, v in zip(a["grads"], b["grads"], strict=True))
    return tensors and grads and all(a[k] == b[k] for k in ("req", "modes", "hooks"))


@pytest.mark.parametrize("shortcut,preact", [("A", False), ("B", False), ("B", True)])
def test_all_subsets_add_up_to_the_full_gradient(shortcut: str, preact: bool) -> None:
    model = tiny(shortcut, preact)
    x, y = data()
    n = len(blocks_of(model))
    patterns = [c for k in range(n + 1) for c in itertools.combinations(range(n), k)]
    assert len(patterns) == 2**n == 16
    full = full_gradient(model, x, y)
    assert full.norm() > 0
    for grads in (gated(model, x, y, patterns), chained(model, x, y, patterns)):
        total = torch.stack(grads).sum(dim=0)
        assert torch.allclose(total, full, atol=1e-5 * float(full.abs().max()), rtol=0)


@pytest.mark.parametrize("shortcut,preact", [("A", False), ("B", False), ("B", True)])
def test_gated_gradient_equals_detached_branches(shortcut: str, preact: bool) -> None:
    model = tiny(shortcut, preact)
    x, y = data()
    n = len(blocks_of(model))
    patterns: list[tuple[int, ...]] = [(), tuple(range(n)), (0, 2), (1, 3)]
    got = gated(model, x, y, patterns)
    fast = chained(model, x, y, patterns)
    for pattern, g, h in zip(patterns, got, fast, strict=True):
        want = detached_gradient(model, x, y, set(pattern))
        assert want.norm() > 0
        assert torch.allclose(g, want, atol=1e-10, rtol=1e-8), pattern
        assert torch.allclose(h, want, atol=1e-10, rtol=1e-8), pattern
    assert not torch.allclose(got[0], got[1])  # the two extremes differ: the gating does something


class Twice(nn.Module):
    """Runs one block twice and skips the others: not a chain of n distinct blocks."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        m = self.inner
        h = m.layer1[0](m.layer1[0](m.relu(m.bn1(m.conv1(x)))))
        return m.fc(torch.flatten(m.avgpool(h), 1))


class Bypass(nn.Module):
    """A chain of blocks plus a second head on the stem's output: gradient goes around the blocks."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.head = inner, nn.Linear(4, 10).double()

    def forward(self, x: Tensor) -> Tensor:
        m = self.inner
        h0 = m.relu(m.bn1(m.conv1(x)))
        h = m.layer3(m.layer2(m.layer1(h0)))
        return m.fc(torch.flatten(m.avgpool(h), 1)) + self.head(torch.flatten(m.avgpool(h0), 1))


def test_blocks_that_form_no_chain_are_refused() -> None:
    inner = tiny("A")
    inner.fc = nn.Linear(4, 10).double()
    with pytest.raises(ResvizError, match="run once each"):
        paths_study("twice", Twice(inner), (2, 3, 8, 8), samples_per_k=1)
    with pytest.raises(ResvizError, match="around its residual blocks"):
        paths_study("bypass", Bypass(tiny("A")), (2, 3, 8, 8), samples_per_k=1)
    model = Bypass(tiny("A"))  # the refusal is right: the gated sum over subsets counts the bypass 2^n times
    x, y = data()
    patterns = [c for k in range(5) for c in itertools.combinations(range(4), k)]
    total = torch.stack(gated(model, x, y, patterns)).sum(dim=0)
    assert not torch.allclose(total, full_gradient(model, x, y), rtol=1e-3, atol=0)


def test_study_numbers_match_independent_gradients() -> None:
    model = tiny("B")
    x, y = data(batch=4)
    n = len(blocks_of(model))
    study = paths_study("tiny", model, samples_per_k=n, data=(x, y))
    norms = {p: float(detached_gradient(model, x, y, set(p)).norm())
             for k in range(n + 1) for p in itertools.combinations(range(n), k)}
    for k in (0, 1, n - 1, n):  # C(n, k) <= n subsets: measured exhaustively
        row = study.length(k)
        want = [v for p, v in norms.items() if len(p) == k]
        assert row.exhaustive and row.samples == len(want) and row.grad_norm_err == 0.0
        assert row.grad_norm == pytest.approx(sum(want) / len(want), rel=1e-9)
        assert row.contribution == pytest.approx(math.comb(n, k) * row.grad_norm, rel=1e-12)
    sampled = study.length(2)  # C(4, 2) = 6 > 4 samples: random subsets, a standard error
    assert not sampled.exhaustive and sampled.samples == n and sampled.grad_norm_err > 0
    pool = [v for p, v in norms.items() if len(p) == 2]
    assert min(pool) <= sampled.grad_norm <= max(pool)


def test_path_counts_are_exact_binomials() -> None:
    model = tiny("A")
    study = paths_study("tiny", model, (2, 3, 8, 8), samples_per_k=2)
    assert [r.paths for r in study.lengths] == [1, 4, 6, 4, 1]
    assert sum(r.paths for r in study.lengths) == 2**study.n
    deep = build_model(derive(get_spec("resnet110"), {"widths": [2, 2, 2], "stem_width": 2}), device="cpu")
    few = paths_study("resnet110", deep, (2, 3, 8, 8), samples_per_k=1, ks=[0, 27, 54])
    assert few.n == 54
    row = few.length(27)
    assert row.paths == 1946939425648112 and isinstance(row.paths, int)  # C(54, 27), beyond float precision
    assert [r.k for r in few.lengths] == [0, 27, 54]
    assert any("3 of the 55" in note for note in few.notes)


def test_effective_range_is_the_shortest_window_holding_the_fraction() -> None:
    rng = random.Random(3)
    for _ in range(50):
        ks = list(range(rng.randint(1, 9)))
        vals = [rng.random() for _ in ks]
        lo, hi = effective_range(ks, vals, 0.8)
        total = sum(vals)
        windows = [(j - i, -sum(vals[i:j + 1]), i, j) for i in ks for j in ks
                   if j >= i and sum(vals[i:j + 1]) >= 0.8 * total - 1e-12]
        _, best, i, j = min(windows)
        assert sum(vals[lo:hi + 1]) == pytest.approx(-best) and hi - lo == j - i
    assert effective_range([0, 1, 2], [0.0, 0.0, 0.0], 0.9) == (0, 2)
    assert effective_range([0, 1, 2, 3], [0.0, 1.0, 0.0, 0.0], 0.9) == (1, 1)


def test_model_is_left_intact() -> None:
    model = tiny("B")
    x, y = data()
    F.cross_entropy(model(x), y).backward()  # a .grad to keep
    model.eval()
    model.layer1[0].train()  # mixed modes to keep
    before = state(model)
    paths_study("tiny", model, (2, 3, 8, 8), samples_per_k=2)
    assert same_state(before, state(model))


def test_refusals_are_one_line() -> None:
    with pytest.raises(ResvizError, match="plain net"):
        paths_study("plain", tiny(plain=True), (2, 3, 8, 8), samples_per_k=2)
    with pytest.raises(ResvizError, match="between 0 and 4"):
        paths_study("tiny", tiny(), (2, 3, 8, 8), samples_per_k=2, ks=[5])
    with pytest.raises(ResvizError, match="at least 1"):
        paths_study("tiny", tiny(), (2, 3, 8, 8), samples_per_k=0)
    with pytest.raises(ResvizError, match="no residual blocks"):
        paths_study("mlp", nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), (2, 3, 1, 1), samples_per_k=1)


def test_record_round_trips_and_draws() -> None:
    study = paths_study("tiny", tiny("A"), (2, 3, 8, 8), samples_per_k=3, weights="initialisation")
    text = json.dumps(study.to_dict())
    data_ = json.loads(text)
    assert data_["kind"] == "resviz.paths_study" and data_["lengths"][2]["paths"] == 6
    assert PathsStudy.from_dict(data_) == study
    counts, grads, contrib = paths_figures(study)
    assert list(counts.data[0].y) == [1.0, 4.0, 6.0, 4.0, 1.0]
    assert grads.layout.yaxis.type == "log"
    assert list(grads.data[0].error_y.array) == pytest.approx([r.grad_norm_err for r in study.lengths])
    lo, hi = study.effective_range
    shape = contrib.layout.shapes[0]
    assert (shape.x0, shape.x1) == (lo - 0.5, hi + 0.5)
    text = " ".join(paths_findings(study))
    assert f"length {lo} to {hi}" in text and "initialisation" in text and "5 to 17" in text
