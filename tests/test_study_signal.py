"""The signal-propagation study against hooks and moments written here, its records and its report."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from resviz.errors import ResvizError
from resviz.model.resnet import build_model
from resviz.records.signal import BatchNormMode, SignalBlock, SignalModel, SignalStudy
from resviz.render.report.study_signal import line_fit, signal_figures, signal_findings
from resviz.studies.signal import signal_study
from resviz.zoo import derive, get_spec

SHAPE = (8, 3, 16, 16)


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, device="cpu")


def _small_preact() -> nn.Module:
    torch.manual_seed(0)
    return build_model(derive(get_spec("preact_resnet164"), {"layers": (2, 2, 2)}), device="cpu")


def _moments(y: Tensor) -> tuple[float, float]:
    """avg_sq_mean and avg_var written out: per channel mean and mean squared deviation."""
    y = y.detach().double()
    m = y.mean(dim=(0, 2, 3))
    var = ((y - m[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
    return float((m**2).mean()), float(var.mean())


def _expected(model: nn.Module, main_addend: str | None, train: bool = True) -> list[dict[str, Any]]:
    """Per block of a copy: the output's moments and the variance of ``main_addend``'s output
    (a submodule of each block), or of the block output when None."""
    twin = copy.deepcopy(model).train(train)
    rows: list[dict[str, Any]] = []
    handles = []
    for name, block in twin.named_modules():
        if name.count(".") != 1 or not name.startswith("layer"):
            continue

        def out_hook(_m: nn.Module, _a: Any, y: Tensor, name: str = name) -> None:
            sq, var = _moments(y)
            rows.append({"name": name, "sq": sq, "var": var})

        def branch_hook(_m: nn.Module, _a: Any, y: Tensor, name: str = name) -> None:
            branches[name] = _moments(y)[1]

        handles.append(block.register_forward_hook(out_hook))
        if main_addend is not None:
            handles.append(getattr(block, main_addend).register_forward_hook(branch_hook))
    branches: dict[str, float] = {}
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        twin(x)
    for h in handles:
        h.remove()
    for r in rows:
        r["branch"] = branches.get(r["name"], r["var"])
    return rows


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7)


@pytest.mark.parametrize(("name", "addend"), [("resnet20", "bn2"), ("plain20", None), ("preact", "conv3")])
def test_numbers_equal_hooks_written_here(name: str, addend: str | None) -> None:
    model = _small_preact() if name == "preact" else _model(name)
    study = signal_study([(name, model)], SHAPE, seed=3)
    got = study.models[0].blocks
    want = _expected(model, addend)
    assert [b.name for b in got] == [r["name"] for r in want]
    assert len(got) == (6 if name == "preact" else 9)
    for b, r in zip(got, want, strict=True):
        assert _close(b.avg_sq_mean, r["sq"]), (b.name, b.avg_sq_mean, r["sq"])
        assert _close(b.avg_var, r["var"]), (b.name, b.avg_var, r["var"])
        assert _close(b.branch_var, r["branch"]), (b.name, b.branch_var, r["branch"])
        assert b.stage == {"layer1": "conv2_x", "layer2": "conv3_x", "layer3": "conv4_x"}[b.name.split(".")[0]]
    assert study.models[0].preact is (name == "preact")
    assert study.models[0].residual is (name != "plain20")


def test_plain_branch_is_whole_block_and_eval_mode_uses_running_stats() -> None:
    model = _model("plain20")
    with torch.no_grad():  # running statistics far from the batch's, so the two modes differ
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.fill_(4.0)
    study = signal_study([("plain20", model)], SHAPE, seed=3, train_mode=False)
    assert study.bn_mode is BatchNormMode.EVAL
    want = _expected(model, None, train=False)
    for b, r in zip(study.models[0].blocks, want, strict=True):
        assert b.shortcut == "none" and b.branch_var == b.avg_var
        assert _close(b.avg_var, r["var"])
    batch = signal_study([("plain20", model)], SHAPE, seed=3)
    assert not _close(batch.models[0].blocks[-1].avg_var, study.models[0].blocks[-1].avg_var)


class TorchvisionStyle(nn.Module):
    """A torchvision-like basic block: in-place ReLU, ``out += identity``, no fork point."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.downsample: nn.Module | None = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += x
        return self.relu(out)


def test_foreign_blocks_use_their_last_batchnorm_as_branch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), TorchvisionStyle(4), TorchvisionStyle(4))
    study = signal_study([("tv", model)], SHAPE, seed=3)
    blocks = study.models[0].blocks
    assert [b.name for b in blocks] == ["1", "2"]
    twin = copy.deepcopy(model).train()
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h0 = twin[0](x)
        b2 = twin[1].bn2(twin[1].conv2(torch.relu(twin[1].bn1(twin[1].conv1(h0)))))
        y1 = twin[1](h0)
    assert _close(blocks[0].branch_var, _moments(b2)[1])
    assert _close(blocks[0].avg_var, _moments(y1)[1])
    assert blocks[0].shortcut == "identity"


def _state(model: nn.Module) -> dict[str, Any]:
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "grads": [p.grad for p in model.parameters()],
        "req": [p.requires_grad for p in model.parameters()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()],
    }


@pytest.mark.parametrize("train_first", [True, False])
def test_model_left_as_it_was(train_first: bool) -> None:
    model = _model("resnet20").train(train_first)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    model.conv1.weight.requires_grad_(False)
    before = _state(model)
    signal_study([("resnet20", model)], SHAPE, seed=1)
    after = _state(model)
    for k, v in before["tensors"].items():
        assert torch.equal(v, after["tensors"][k]), k
    assert before["training"] == after["training"]
    assert all(a is b for a, b in zip(before["grads"], after["grads"], strict=True))
    assert before["req"] == after["req"] and before["hooks"] == after["hooks"]


def test_json_round_trip_and_shape() -> None:
    study = signal_study([("resnet20", _model("resnet20")), ("plain20", _model("plain20"))], SHAPE)
    data = json.loads(json.dumps(study.to_dict(), allow_nan=False))
    assert data["kind"] == "resviz.signal_study" and data["schema"] >= 1
    assert set(data["models"][0]["blocks"][0]) >= {"name", "stage", "avg_sq_mean", "avg_var", "branch_var"}
    assert SignalStudy.from_dict(data) == study
    bad = SignalStudy((2, 3, 4, 4), 0, BatchNormMode.TRAIN, (SignalModel("m", (
        SignalBlock("b", "s", 0.0, 1.0, math.nan),)),))
    back = SignalStudy.from_dict(json.loads(json.dumps(bad.to_dict(), allow_nan=False)))
    assert math.isnan(back.models[0].blocks[0].branch_var)
    with pytest.raises(ValueError, match="kind"):
        SignalStudy.from_dict({**data, "kind": "resviz.trace"})


@pytest.mark.parametrize(("shape", "message"), [
    ((8, 3, 16), "4 positive integers"), ((1, 3, 16, 16), "at least 2"), ((8, 3, 0, 16), "positive"),
])
def test_user_errors(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ResvizError, match=message):
        signal_study([("resnet20", _model("resnet20"))], shape)
    with pytest.raises(ResvizError, match="at least one"):
        signal_study([], SHAPE)
    with pytest.raises(ResvizError, match="fails on input"):
        signal_study([("resnet20", _model("resnet20"))], (2, 1, 16, 16))


class _Breaks(nn.Module):
    """A residual network of no resviz block whose forward fails for a reason of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = x + self.conv(x)
        return y.view(-1, 7)  # 8x3x16x16 values do not fill rows of 7


def test_a_foreign_model_that_fails_is_one_line() -> None:
    """Discovery runs the forward too: its failure is the same one line as the measured pass's."""
    with pytest.raises(ResvizError) as err:
        signal_study([("breaks", _Breaks())], SHAPE)
    assert str(err.value).startswith("breaks fails on input 8x3x16x16: ") and "\n" not in str(err.value)


def _linear_study() -> SignalStudy:
    """A made-up pre-activation net: variance 1 + 0.5 i inside each stage, branch variance 1."""
    blocks = tuple(
        SignalBlock(f"layer{s}.{i}", f"stage{s}", 0.1, 1.0 + 0.5 * i, 1.0, "projection" if i == 0 else "identity")
        for s in (1, 2) for i in range(6)
    )
    flat = tuple(SignalBlock(f"layer1.{i}", "stage1", 0.1, 0.34 + 0.001 * (i % 2), 0.34, "none") for i in range(5))
    return SignalStudy((4, 3, 8, 8), 0, BatchNormMode.TRAIN, (
        SignalModel("pre", blocks, preact=True), SignalModel("plain", flat, preact=False)))


def test_findings_read_the_numbers() -> None:
    found = signal_findings(_linear_study())
    text = "\n".join(found)
    assert "pre stage1: average channel variance grows about linearly, 1 -> 3.5 over 6 blocks (slope 0.5" in text
    assert "pre: at the 1 stage transitions the variance goes 3.5 -> 1; 1 reset it" in text
    assert "pre: matches the prediction" in text
    assert "plain stage1: average channel variance stays flat" in text
    assert "plain: matches the prediction" in text
    growing = _linear_study().models[0]
    post = SignalModel("post", growing.blocks, preact=False)
    assert any(s.startswith("post: differs from the prediction") and "2 of 2 stages grow linearly" in s
               for s in signal_findings(SignalStudy((4, 3, 8, 8), 0, BatchNormMode.TRAIN, (post,))))
    unknown = SignalModel("tv", growing.blocks, preact=None)
    assert signal_findings(SignalStudy((4, 3, 8, 8), 0, BatchNormMode.TRAIN, (unknown,)))[-1] == (
        "tv: its blocks do not say whether they are pre- or post-activation: no prediction checked.")


def test_line_fit_equals_least_squares_written_here() -> None:
    ys = [0.3, 0.9, 1.2, 2.0, 2.1]
    n = len(ys)
    xs = list(range(n))
    a = torch.tensor([[float(x), 1.0] for x in xs], dtype=torch.float64)
    sol = torch.linalg.lstsq(a, torch.tensor(ys, dtype=torch.float64)[:, None]).solution
    pred = (a @ sol).flatten().tolist()
    mean = sum(ys) / n
    r2 = 1 - sum((y - p) ** 2 for y, p in zip(ys, pred, strict=True)) / sum((y - mean) ** 2 for y in ys)
    slope, got_r2 = line_fit(ys)
    assert math.isclose(slope, float(sol[0, 0]), rel_tol=1e-9) and math.isclose(got_r2, r2, rel_tol=1e-9)


def test_figures_plot_the_record() -> None:
    study = _linear_study()
    figs = signal_figures(study)
    assert len(figs) == 3  # one per model, then the overlay
    first = figs[0]
    assert list(first.data[0].y) == [b.avg_var for b in study.models[0].blocks]
    assert list(first.data[2].y) == [b.branch_var for b in study.models[0].blocks]
    assert [s["x0"] for s in first.layout.shapes] == [6.5]  # one stage boundary, between blocks 6 and 7
    assert [t.name for t in figs[-1].data] == ["pre", "plain"]


def test_blocks_found_in_the_computation_measure_the_operand_actually_added() -> None:
    """timm-style SE-ResNet: the branch is the SE module's output (what is added), not bn3's."""
    import importlib

    mod = importlib.import_module("tests.families.timm_seresnet")
    torch.manual_seed(0)
    model = mod.build()
    seen: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _a: object, out: torch.Tensor) -> None:
        seen.setdefault("se", out.detach().clone())

    handle = model.get_submodule("layer1.0.se").register_forward_hook(keep)
    study = signal_study([("se", model)], (4, 3, 32, 32))
    handle.remove()
    first = study.models[0].blocks[0]
    y = seen["se"].double()
    want = y.var(dim=(0, 2, 3), unbiased=False).mean()
    assert first.name == "layer1.0" and first.branch_var == pytest.approx(float(want), rel=1e-5)
    assert [b.name for b in study.models[0].blocks] == [t.block for t in mod.TRUTH]
