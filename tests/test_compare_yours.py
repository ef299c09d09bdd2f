"""``resviz.compare`` with models resviz did not build: modules, ``pkg.mod:factory`` targets, named by a dict.

A module is copied for every run (never trained itself); a factory is called again for every seed; each is
summarised on the meta device, its depth counted as the papers count it and its logits' width read from one
meta forward, before any training.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import resviz
from resviz.api import analyze_spec, list_models
from resviz.errors import ResvizError
from resviz.measure.static import weighted_depth
from resviz.zoo import get_spec
from tests.families import hf_resnet, tv_resnet, vit


@pytest.mark.parametrize("name", list_models(include_plain=True))
def test_weighted_depth_is_the_papers_depth_for_every_preset(name: str) -> None:
    """The depth counted from a summary (convolutions and linear layers off the shortcut) equals the spec's
    depth for every preset: the count used for models that carry no spec."""
    spec = get_spec(name)
    assert weighted_depth(analyze_spec(spec)) == spec.depth


def test_vit_depth_leaves_attention_products_out() -> None:
    s = resviz.summarize(vit.build(depth=3), input_size=vit.INPUT)
    assert any(lr.type == "scaled_dot_product_attention" for lr in s.layers)
    assert weighted_depth(s) == 1 + 3 * 4 + 1  # patch embedding, qkv/proj/fc1/fc2 per block, head


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_modules_factories_and_presets_side_by_side() -> None:
    """A module (left exactly as it was), a factory target and a preset, trained on the same batches."""
    mine = tv_resnet.build()
    mine.eval()
    before = _state(mine)
    result = resviz.compare({"mine": mine, "vit": "tests.families.vit:build", "r20": "resnet20"},
                            steps=2, batch=4, input_size="3x32x32")
    assert [m.name for m in result.models] == ["mine", "vit", "r20"]
    assert result.settings.models == ("mine", "vit", "r20")
    by = {m.name: m for m in result.models}
    assert by["mine"].blocks_count == len(tv_resnet.TRUTH) and by["vit"].blocks_count == len(vit.TRUTH)
    assert by["vit"].depth == weighted_depth(resviz.summarize(vit.build(), input_size=vit.INPUT))
    assert by["r20"].depth == 20 and by["r20"].spec["name"] == "r20" and list(by["r20"].spec["layers"]) == [3, 3, 3]
    assert by["mine"].spec == {}
    for m in result.models:
        assert m.has_skips and m.training is not None and m.training.steps_done == 2
        assert all(math.isfinite(v) for v in m.training.losses)
        assert all(b.grad_main is not None and b.grad_skip is not None for b in m.trace.blocks)
    after = _state(mine)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the copy trained, not the module
    assert not mine.training and all(p.grad is None for p in mine.parameters())


def test_a_module_starts_every_run_from_its_own_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the seed, the model traced at initialisation is a copy of the module with its own weights
    (a copy: not the module itself), and the module's hooks come with it."""
    from resviz.studies import compare as study

    mine = tv_resnet.build()
    calls: list[int] = []
    mine.layer1.register_forward_hook(lambda *_: calls.append(1) and None)
    weights = _state(mine)
    probed: list[nn.Module] = []
    real_probe = study._probe

    def probe(model: nn.Module, *args: object, **kwargs: object) -> object:
        probed.append(model)
        return real_probe(model, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(study, "_probe", probe)
    for seed in (0, 1):
        probed.clear()
        resviz.compare({"a": mine, "b": "resnet20"}, batch=4, seed=seed)
        copy_ = probed[0]
        assert copy_ is not mine
        assert all(torch.equal(weights[k], v) for k, v in copy_.state_dict().items())
    assert calls  # the copies keep the module's hooks: they may be part of what it computes


def test_a_module_that_reads_values_keeps_its_blocks_in_a_comparison() -> None:
    """A module that cannot run on the meta device (its forward reads a value) and holds a BatchNorm1d
    head, in training mode: its block is found from a real pass in eval mode, so the comparison does
    not call it a plain net."""
    from tests.test_byo import _ReadsValues

    mine = _ReadsValues().train()
    result = resviz.compare({"mine": mine, "ref": "resnet20"}, batch=4)
    m = result.models[0]
    assert m.has_skips and m.blocks_count == 1 and m.trace.blocks[0].grad_main


def test_any_iterable_of_models() -> None:
    result = resviz.compare(name for name in ("resnet20", "plain20"))
    assert [m.name for m in result.models] == ["resnet20", "plain20"]


def test_model_output_logits_train() -> None:
    """HuggingFace's ResNet returns a ModelOutput: its logits are trained and scored."""
    result = resviz.compare([hf_resnet.build(), "resnet20"], steps=2, batch=4)
    hf = result.models[0]
    assert hf.name == "ResNetForImageClassification" and hf.blocks_count == len(hf_resnet.TRUTH)
    assert hf.training is not None and len(hf.training.errors) == 2
    assert all(0.0 <= e <= 1.0 for e in hf.training.errors)


class _NoLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": self.conv(x)}


class _Dense(nn.Module):
    """Per-pixel outputs: (batch, classes, H, W) is not what a classification comparison trains."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x.mean()


@pytest.mark.parametrize(("models", "message"), [
    ([tv_resnet.build(), tv_resnet.build()], "model ResNet is given more than once"),
    ({"only": tv_resnet.build()}, "a comparison needs at least two models, got 1"),
    ([_NoLogits(), "resnet20"], "_NoLogits returns dict with fields features, with no logits"),
    ([_Dense(), "resnet20"], "_Dense returns logits of shape 1x4x32x32, not (batch, classes)"),
    (["tests.families.nothere:build", "resnet20"], "'tests.families.nothere:build': cannot import"),
])
def test_bad_models_are_one_line_before_any_training(models: object, message: str) -> None:
    with pytest.raises(ResvizError) as err:
        resviz.compare(models, steps=1, batch=2)  # type: ignore[arg-type]
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_compares_a_factory_with_a_preset(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from resviz.cli import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["compare", "tests.families.vit:build", "resnet20", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = __import__("json").loads(out.read_text())
    assert [m["name"] for m in data["models"]] == ["tests.families.vit:build", "resnet20"]
