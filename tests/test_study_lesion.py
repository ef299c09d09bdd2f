"""Lesion study (Veit et al. 2016, arXiv:1605.06431, Sec. 4): scores against hand-edited models.

A removed residual block is checked against a copy of the model whose residual branch outputs
zeros because its last BatchNorm (post-activation) or last convolution (pre-activation) has
zero weights: edited by hand, evaluated by a loop written here.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resviz.errors import ResvizError
from resviz.model.blocks import PreActBlock, ResidualBlock
from resviz.model.resnet import build_model
from resviz.records import DataInfo, DataKind
from resviz.records.paths import LesionBlock, LesionScore, LesionSet, LesionSettings, LesionStudy
from resviz.render.report.study_paths import lesion_figures, lesion_findings
from resviz.studies.data import Batches
from resviz.studies.lesion import digits_split, lesion_study
from resviz.zoo import derive, get_spec

TINY = {"layers": [2, 1, 1], "widths": [4, 8, 8], "stem_width": 4, "name": "tiny"}


def tiny(shortcut: str = "A", preact: bool = False, plain: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(derive(get_spec("resnet20"), {**TINY, "shortcut": shortcut, "preact": preact}),
                        device="cpu", plain=plain).double()
    with torch.no_grad():  # running statistics away from (0, 1), so eval mode differs from an identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model


def held_out(n: int = 12, batch: int = 5) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 3, 8, 8, generator=g, dtype=torch.double)
    y = torch.randint(0, 10, (n,), generator=g)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def score(model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> tuple[float, float]:
    """Mean cross entropy and top-1 error, by hand, in eval mode."""
    model.eval()
    losses, wrong, count = [], 0, 0
    with torch.no_grad():
        for x, y in batches:
            out = model(x)
            losses.append(F.cross_entropy(out, y, reduction="sum").item())
            wrong += int((out.argmax(1) != y).sum())
            count += len(y)
    return sum(losses) / count, wrong / count


def zero_residual(model: nn.Module, name: str) -> nn.Module:
    """A copy of ``model`` whose block ``name`` has a residual branch that outputs zeros."""
    edited = copy.deepcopy(model)
    block = edited.get_submodule(name)
    with torch.no_grad():
        if isinstance(block, PreActBlock):
            block.conv2.weight.zero_()
        else:
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()
    return edited


def state(model: nn.Module) -> dict[str, Any]:
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict().items()},
        "modes": [m.training for m in model.modules()],
        "hooks": [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()],
        "grads": [p.grad for p in model.parameters()],
    }


def names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, ResidualBlock)]


@pytest.mark.parametrize("shortcut,preact", [("A", False), ("B", False), ("B", True)])
def test_one_block_removed_equals_a_zeroed_residual_branch(shortcut: str, preact: bool) -> None:
    model = tiny(shortcut, preact)
    data = held_out()
    study = lesion_study("tiny", model, data, max_k=0)
    assert (study.baseline.loss, study.baseline.error) == pytest.approx(score(copy.deepcopy(model), data), rel=1e-9)
    assert [b.name for b in study.blocks] == names(model)
    for row in study.blocks:
        want = score(zero_residual(model, row.name), data)
        assert (row.loss, row.error) == pytest.approx(want, rel=1e-9), row.name
        assert row.removable
    assert [b.downsampling for b in study.blocks] == [False, False, True, True]
    assert any(b.loss != pytest.approx(study.baseline.loss) for b in study.blocks)  # a lesion changes something


def test_plain_blocks_become_identities_or_are_marked() -> None:
    model = tiny(plain=True)
    data = held_out()
    study = lesion_study("plain", model, data, max_k=2, seeds=3)
    assert study.plain
    rows = {b.name: b for b in study.blocks}
    assert not rows["layer2.0"].removable and math.isnan(rows["layer2.0"].error)
    assert not rows["layer3.0"].removable
    for name in ("layer1.0", "layer1.1"):
        edited = copy.deepcopy(model)
        edited.layer1[int(name[-1])] = nn.Identity()
        assert (rows[name].loss, rows[name].error) == pytest.approx(score(edited, data), rel=1e-9)
    both = copy.deepcopy(model)  # k = 2 of the 2 removable blocks: every draw removes both
    both.layer1 = nn.Sequential(nn.Identity(), nn.Identity())
    last = study.sets[-1]
    assert last.k == 2 and last.seeds == 3 and last.loss_err == 0.0
    assert (last.loss, last.error) == pytest.approx(score(both, data), rel=1e-9)


def test_sets_average_over_draws() -> None:
    model = tiny("B")
    data = held_out()
    study = lesion_study("tiny", model, data, max_k=4, seeds=4)
    assert [s.k for s in study.sets] == [1, 2, 3, 4]
    all_zero = model
    for name in names(model):
        all_zero = zero_residual(all_zero, name)
    last = study.sets[-1]
    assert (last.loss, last.error) == pytest.approx(score(all_zero, data), rel=1e-9) and last.loss_err == 0.0
    singles = sorted(b.loss for b in study.blocks)
    first = study.sets[0]  # a mean of 4 single-block losses: within their range
    assert singles[0] - 1e-12 <= first.loss <= singles[-1] + 1e-12
    assert first.loss_err > 0 or len(set(singles)) == 1


def test_model_is_left_intact() -> None:
    model = tiny("B")
    model.train()
    model.layer2.eval()
    before = state(model)
    lesion_study("tiny", model, held_out(), max_k=2, seeds=2)
    after = state(model)
    assert before["modes"] == after["modes"] and before["hooks"] == after["hooks"]
    assert all(torch.equal(before["tensors"][k], after["tensors"][k]) for k in before["tensors"])
    assert all(a is b for a, b in zip(before["grads"], after["grads"], strict=True))


def test_refusals_and_selection() -> None:
    model = tiny()
    with pytest.raises(ResvizError, match=r"no residual block 'layer9\.0'"):
        lesion_study("tiny", model, held_out(), blocks=["layer9.0"])
    with pytest.raises(ResvizError, match="held-out data"):
        lesion_study("tiny", model, [])
    with pytest.raises(ResvizError, match="max_k"):
        lesion_study("tiny", model, held_out(), max_k=9)
    picked = lesion_study("tiny", model, held_out(), blocks=["layer3.0"], max_k=1, seeds=1)
    assert [b.name for b in picked.blocks] == ["layer3.0"] and picked.blocks[0].downsampling


def test_batches_are_read_once_each() -> None:
    data = held_out()
    info = DataInfo(DataKind.SYNTHETIC, "test", 10, tuple(map(str, range(10))), 12, (3, 8, 8))
    study = lesion_study("tiny", tiny(), Batches(info, len(data), lambda i: data[i]), max_k=0)
    assert study.settings.held_out == 12  # a Batches wraps its indices: iterating it would not end


def test_digits_split_is_disjoint_and_deterministic() -> None:
    train, test = digits_split((1, 8, 8), held_out=100, batch=64, count=30, seed=0)
    again, test2 = digits_split((1, 8, 8), held_out=100, batch=64, count=30, seed=0)
    assert sum(len(y) for _, y in test) == 100
    assert all(torch.equal(a[0], b[0]) for a, b in zip(test, test2, strict=True))
    assert torch.equal(train[3][0], again[3][0])
    held = {tuple(r.tolist()) for x, _ in test for r in x.flatten(1)}
    seen = {tuple(r.tolist()) for i in range(30) for r in train[i][0].flatten(1)}
    assert len(seen) == 1797 - 100  # 30 batches of 64 cover every training image
    assert not held & seen
    xs = torch.cat([train[i][0] for i in range(27)])  # 27 x 64 = one pass, less a few
    assert abs(float(xs.mean())) < 0.05


def test_record_round_trips_and_draws() -> None:
    res = lesion_study("tiny", tiny("A"), held_out(), max_k=2, seeds=2)
    plain = lesion_study("plain", tiny(plain=True), held_out(), max_k=1, seeds=2)
    for s in (res, plain):
        d = json.loads(json.dumps(s.to_dict()))
        assert d["kind"] == "resviz.lesion_study" and set(d["baseline"]) == {"loss", "error"}
        assert set(d["blocks"][0]) >= {"name", "downsampling", "loss", "error"}
        assert LesionStudy.from_dict(d).to_dict() == s.to_dict()
    per_block, sets = lesion_figures(res, plain)
    symbols = list(per_block.data[0].marker.symbol)
    assert symbols == ["diamond" if b.downsampling else "circle" for b in res.blocks]
    assert list(sets.data[0].y) == pytest.approx([res.baseline.error] + [s.error for s in res.sets])
    assert "plain" in sets.data[-1].name
    text = " ".join(lesion_findings(plain))
    assert "cannot be removed" in text and f"{plain.settings.held_out} images" in text


def test_findings_read_the_numbers() -> None:
    blocks = (LesionBlock("a", False, 0.3, 0.1), LesionBlock("b", False, 0.5, 0.3), LesionBlock("c", True, 0.9, 0.6))
    sets = (LesionSet(1, 0.6, 0.2, 0.1, 0.05, 3), LesionSet(2, 0.5, 0.15, 0.1, 0.05, 3),
            LesionSet(3, 1.0, 0.7, 0, 0, 3))
    study = LesionStudy("r", LesionScore(0.2, 0.05), blocks, sets, LesionSettings(100, 3, 3))
    text = lesion_findings(study)
    assert "error 5%, loss 0.2 (100 images)" in text[0]
    assert "20% error on average over 2 (worst: b, 30%)" in text[1]
    assert "60% error on average over 1 (worst: c, 60%)" in text[2]
    assert "70% error" in text[3] and "falls 1 time(s)" in text[3]
