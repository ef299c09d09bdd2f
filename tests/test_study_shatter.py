"""The shattered-gradients study against per-point autograd written here, its records and its report."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resviz.errors import ResvizError
from resviz.model.resnet import build_model
from resviz.records.signal import BatchNormMode, ShatterModel, ShatterStudy, TrainGradient
from resviz.render.report.study_signal import shatter_figures, shatter_findings
from resviz.studies.shatter import shatter_study

IMAGE = (3, 16, 16)
POINTS = 32
SEED = 5


def _model(name: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Exactness tests run in float64: float32 rounding differs between a batch of 32 and a batch
    of one by about 1e-6, which the centred autocorrelation magnifies near 1e-5."""
    torch.manual_seed(0)
    return build_model(name, device="cpu").to(dtype)


def _line(points: int = POINTS, image: tuple[int, ...] = IMAGE) -> Tensor:
    ends = torch.randn((2, *image), generator=torch.Generator().manual_seed(SEED)).double()
    return torch.stack([ends[0] + (i / (points - 1)) * (ends[1] - ends[0]) for i in range(points)])


def _one_by_one(model: nn.Module, xs: Tensor, k: int = 0) -> Tensor:
    """Eval-mode gradients of logit k, one point at a time (batch of one)."""
    twin = copy.deepcopy(model).eval()
    rows = []
    for x in xs:
        xi = x[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(twin(xi)[0, k], xi)
        rows.append(g.flatten())
    return torch.stack(rows).double()


def _stats(g: Tensor, max_lag: int) -> dict[str, Any]:
    """Neighbour cosine and centred autocorrelation, written out pair by pair."""
    p = g.shape[0]
    cos = [float(F.cosine_similarity(g[i], g[i + 1], dim=0)) for i in range(p - 1)]
    m = g.mean(0)
    c = [g[i] - m for i in range(p)]
    power = sum(float(v @ v) for v in c) / p
    acf = [sum(float(c[i] @ c[i + k]) for i in range(p - k)) / (p - k) / power for k in range(max_lag + 1)]
    norms = [float(v.norm()) for v in g]
    return {"cos": sum(cos) / len(cos), "acf": acf, "norms": (min(norms), sum(norms) / p, max(norms))}


def _check(entry: ShatterModel, want: dict[str, Any]) -> None:
    assert math.isclose(entry.neighbor_correlation, want["cos"], abs_tol=1e-8)
    assert len(entry.autocorrelation) == len(want["acf"])
    for got, exp in zip(entry.autocorrelation, want["acf"], strict=True):
        assert math.isclose(got, exp, abs_tol=1e-8)
    got_norms = (entry.grad_norm_min, entry.grad_norm_mean, entry.grad_norm_max)
    for got, exp in zip(got_norms, want["norms"], strict=True):
        assert math.isclose(got, exp, rel_tol=1e-8)


@pytest.mark.parametrize("name", ["resnet20", "plain20"])
def test_eval_mode_equals_gradients_one_point_at_a_time(name: str) -> None:
    model = _model(name, torch.float64)
    study = shatter_study([(name, model)], IMAGE, points=POINTS, seed=SEED, bn_mode="eval", output_index=3)
    assert study.max_lag == POINTS // 4
    entry = study.entry(name, "eval")
    _check(entry, _stats(_one_by_one(model, _line(), k=3), POINTS // 4))
    assert entry.residual is (name == "resnet20") and entry.blocks == 9


def _frozen_batchnorm_grads(model: nn.Module, xs: Tensor) -> Tensor:
    """Train-mode gradients with BatchNorm's batch statistics detached: each BN's output is
    rebuilt from the batch moments with the moments cut out of the graph."""
    twin = copy.deepcopy(model).train()

    def hook(m: nn.BatchNorm2d, args: tuple[Tensor, ...], _out: Tensor) -> Tensor:
        x = args[0]
        mean = x.mean(dim=(0, 2, 3), keepdim=True).detach()
        var = x.var(dim=(0, 2, 3), keepdim=True, unbiased=False).detach()
        return (x - mean) / torch.sqrt(var + m.eps) * m.weight[None, :, None, None] + m.bias[None, :, None, None]

    for m in twin.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(hook)
    xb = xs.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(twin(xb)[:, 0].sum(), xb)
    return g.flatten(1).double()


def test_train_mode_frozen_statistics_equal_detached_batchnorm() -> None:
    model = _model("resnet20", torch.float64)
    study = shatter_study([("r", model)], IMAGE, points=POINTS, seed=SEED, bn_mode="train")
    assert study.train_gradient is TrainGradient.FROZEN_STATS
    _check(study.entry("r", "train"), _stats(_frozen_batchnorm_grads(model, _line()), POINTS // 4))


def test_train_mode_full_gradient_is_the_jacobian_diagonal() -> None:
    model = _model("resnet20", torch.float64)
    points, image = 6, (3, 8, 8)
    study = shatter_study([("r", model)], image, points=points, seed=SEED, bn_mode="train",
                          train_gradient="full", max_lag=2)
    twin = copy.deepcopy(model).train()
    xs = _line(points, image)
    jac = torch.autograd.functional.jacobian(lambda x: twin(x)[:, 0], xs)  # (P, P, C, H, W)
    diag = torch.stack([jac[i, i].flatten() for i in range(points)]).double()
    _check(study.entry("r", "train"), _stats(diag, 2))
    frozen = shatter_study([("r", model)], image, points=points, seed=SEED, bn_mode="train", max_lag=2)
    # x_i's pull on the batch statistics is part of the full derivative only
    assert abs(frozen.models[0].grad_norm_mean - study.models[0].grad_norm_mean) > 1e-6


def test_constant_gradient_of_a_linear_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    study = shatter_study([("lin", model)], (3, 4, 4), points=8, bn_mode="eval", output_index=2)
    entry = study.models[0]
    assert math.isclose(entry.neighbor_correlation, 1.0, rel_tol=1e-12)
    assert math.isclose(entry.grad_norm_mean, float(model[1].weight[2].detach().norm()), rel_tol=1e-6)
    assert math.isnan(entry.autocorrelation[1])  # no variation along the line: 0 / 0
    assert entry.blocks == 0 and not entry.residual


def _state(model: nn.Module) -> dict[str, Any]:
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "grads": [p.grad for p in model.parameters()],
        "req": [p.requires_grad for p in model.parameters()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()],
        "momentum": [getattr(m, "momentum", None) for m in model.modules()],
    }


@pytest.mark.parametrize("how", ["frozen-stats", "full"])
def test_model_left_as_it_was(how: str) -> None:
    model = _model("resnet20").train()
    model.fc.weight.grad = torch.zeros_like(model.fc.weight)
    model.layer1[0].conv1.weight.requires_grad_(False)
    model.layer1[0].bn1.momentum = None  # cumulative averaging
    model.layer2[0].bn2.momentum = 0.3
    before = _state(model)
    shatter_study([("r", model)], (3, 8, 8), points=4, bn_mode="both", train_gradient=how, max_lag=1)
    after = _state(model)
    for k, v in before["tensors"].items():
        assert torch.equal(v, after["tensors"][k]), k
    assert before["training"] == after["training"] and before["req"] == after["req"]
    assert all(a is b for a, b in zip(before["grads"], after["grads"], strict=True))
    assert before["hooks"] == after["hooks"] and before["momentum"] == after["momentum"]


def test_both_modes_json_round_trip() -> None:
    study = shatter_study([("resnet20", _model("resnet20")), ("plain20", _model("plain20"))], (3, 8, 8), points=8)
    assert [(m.name, m.mode) for m in study.models] == [
        ("resnet20", BatchNormMode.EVAL), ("resnet20", BatchNormMode.TRAIN),
        ("plain20", BatchNormMode.EVAL), ("plain20", BatchNormMode.TRAIN)]
    data = json.loads(json.dumps(study.to_dict(), allow_nan=False))
    assert data["kind"] == "resviz.shatter_study"
    assert set(data["models"][0]) >= {"name", "mode", "neighbor_correlation", "autocorrelation"}
    assert ShatterStudy.from_dict(data) == study


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bn_mode": "both!"}, "bn_mode"), ({"points": 2}, "at least 3"), ({"output_index": 10}, "out of range"),
    ({"max_lag": 8}, "max_lag"), ({"input_shape": (3, 8)}, "3 positive"),
])
def test_user_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"input_shape": (3, 8, 8), "points": 8, "bn_mode": "eval", **kwargs}
    with pytest.raises(ResvizError, match=message):
        shatter_study([("r", _model("resnet20"))], **args)


def _made_up() -> ShatterStudy:
    def entry(name: str, mode: str, cos: float, res: bool, blocks: int) -> ShatterModel:
        acf = (1.0, cos - 0.05, cos / 2, 0.0)
        return ShatterModel(name, BatchNormMode(mode), cos, acf, 0.5, 1.0, 2.0, res, blocks)

    return ShatterStudy((3, 8, 8), 16, 0, 0, 3, TrainGradient.FROZEN_STATS, (
        entry("res20", "eval", 0.9, True, 9), entry("plain20", "eval", 0.5, False, 9),
        entry("plain56", "eval", 0.08, False, 27)))


def test_findings_read_the_numbers() -> None:
    text = "\n".join(shatter_findings(_made_up()))
    assert "plain56 (eval BN), plain, 27 blocks: neighbour correlation 0.08, autocorrelation at lag 1 0.03 " \
           "(white-noise-like)" in text
    assert "res20 (eval BN), residual, 9 blocks: neighbour correlation 0.9, autocorrelation at lag 1 0.85, " \
           "falls below 0.5 at lag 2" in text
    assert "more correlated than plain nets (mean neighbour correlation 0.9 vs 0.29), as the paper predicts" in text
    assert "eval BN, plain nets by depth: plain20 0.5, plain56 0.08: lower in every deeper net" in text
    tied = ShatterModel("other56", BatchNormMode.EVAL, 0.3, (1.0, 0.3), 1.0, 1.0, 1.0, False, 27)
    deeper = ShatterModel("res56", BatchNormMode.EVAL, 0.95, (1.0, 0.9), 1.0, 1.0, 1.0, True, 27)
    more = dataclasses.replace(_made_up(), models=(*_made_up().models, tied, deeper))
    text = "\n".join(shatter_findings(more))
    assert "plain nets by depth: plain20 0.5, plain56 0.08, other56 0.3: lower in every deeper net" in text
    assert "residual nets by depth: res20 0.9, res56 0.95: not lower in every deeper net" in text


def test_figures_plot_the_record() -> None:
    study = _made_up()
    acf, bars = shatter_figures(study)
    assert [t.name for t in acf.data] == ["res20 (eval BN)", "plain20 (eval BN)", "plain56 (eval BN)"]
    assert list(acf.data[2].y) == list(study.models[2].autocorrelation)
    assert list(bars.data[0].y) == [0.9, 0.5, 0.08] and list(bars.data[0].x) == ["res20", "plain20", "plain56"]
