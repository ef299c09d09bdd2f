"""Gradient-flow comparisons: the science at initialisation, determinism, training, bad input."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import resviz
from resviz.api import compare
from resviz.errors import ResvizError
from resviz.records import Comparison
from resviz.render.report import render_markdown
from resviz.studies import training

SMALL: dict[str, Any] = {"batch": 4, "input_size": "3x8x8", "device": "cpu"}


@pytest.fixture(scope="module")
def deep_pair() -> Comparison:
    """resnet56 vs plain56 at initialisation, batch 8 of 3x32x32 (about a second per model)."""
    return compare(["resnet56", "plain56"], steps=0, batch=8, input_size="3x32x32", device="cpu")


@pytest.fixture(scope="module")
def trained() -> Comparison:
    return compare(["resnet20", "plain20"], steps=3, seed=3, **SMALL)


def _numbers(d: Any) -> Any:
    """Drop wall-clock timings: everything else must repeat exactly."""
    if isinstance(d, dict):
        return {k: _numbers(v) for k, v in d.items() if k not in ("seconds",)}
    if isinstance(d, list):
        return [_numbers(v) for v in d]
    return d


def test_plain_net_gradient_ratio_differs_by_more_than_ten_times(deep_pair: Comparison) -> None:
    res, plain = deep_pair.model("resnet56"), deep_pair.model("plain56")
    assert res.blocks_count == plain.blocks_count == 27
    for m in (res, plain):
        assert math.isfinite(m.headline) and m.headline > 0
        assert m.headline == pytest.approx(m.grad_first / m.grad_last)
    spread = max(res.headline, plain.headline) / min(res.headline, plain.headline)
    assert spread > 10.0, (res.headline, plain.headline)


def test_branch_gradients_at_init(deep_pair: Comparison) -> None:
    res, plain = deep_pair.model("resnet56"), deep_pair.model("plain56")
    assert all(b.grad_skip > 0 and b.ratio == pytest.approx(b.grad_main / b.grad_skip) for b in res.blocks)
    assert all(b.grad_skip == 0.0 and b.ratio is None for b in plain.blocks)
    assert all(s.mean_ratio is None for s in plain.stages)
    # The shortcut carries a direct copy of the deeper gradient (He et al. 2016, Eq. 5): on an
    # identity block, the skip part is never negligible next to the main part.
    identity = [b for b in res.blocks if b.shortcut == "identity"]
    assert identity and all(b.grad_skip > 0.1 * b.grad_main for b in identity)
    assert [s.name for s in res.stages] == ["conv2_x", "conv3_x", "conv4_x"]
    assert sum(s.blocks for s in res.stages) == 27


def test_fig7_responses_are_bn_outputs_of_every_3x3_layer(deep_pair: Comparison) -> None:
    for m in deep_pair.models:
        assert len(m.act_std) == 55  # stem conv + 2 x 27 block convs
        assert [a.depth for a in m.act_std] == list(range(1, 56))
        assert all("bn" in a.name for a in m.act_std)
        # Right after BN (weight 1, bias 0) in train mode, each response has std close to 1.
        assert all(0.9 < a.std < 1.1 for a in m.act_std)


def test_same_seed_same_numbers(trained: Comparison) -> None:
    again = compare(["resnet20", "plain20"], steps=3, seed=3, **SMALL)
    assert _numbers(again.to_dict()) == _numbers(trained.to_dict())
    other = compare(["resnet20", "plain20"], steps=0, seed=4, **SMALL)
    assert other.models[0].grad_first != trained.models[0].grad_first


def test_training_records_losses_and_block_series(trained: Comparison) -> None:
    for m in trained.models:
        run = m.training
        assert run is not None and run.status == "ok" and run.steps_done == 3
        assert len(run.losses) == 3 and all(math.isfinite(v) for v in run.losses)
        assert run.series is not None and len(run.series.snapshots) == 3
        assert len(run.series.block_names) == 9
        # Fig. 7 after training: the BN scales moved, so responses are no longer all std 1.
        assert len(m.act_std_trained) == len(m.act_std) == 19
        assert max(abs(a.std - 1.0) for a in m.act_std_trained) > 1e-3
    assert trained.settings.steps_done == 3 and not trained.settings.interrupted
    assert trained.settings.data.kind == "synthetic"


def test_public_api_export() -> None:
    assert resviz.compare is compare


def test_nan_loss_stops_that_model_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real = training.sgd_step

    def poisoned(model: Any, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
        value = real(model, opt, x, y)
        name: str = model.spec.name
        calls[name] = calls.get(name, 0) + 1
        return math.nan if name == "plain20" and calls[name] == 2 else value

    calls: dict[str, int] = {}
    monkeypatch.setattr(training, "sgd_step", poisoned)
    c = compare(["resnet20", "plain20"], steps=4, **SMALL)
    good, bad = c.model("resnet20").training, c.model("plain20").training
    assert good is not None and good.status == "ok" and good.steps_done == 4
    assert bad is not None and bad.status == "nan" and bad.steps_done == 1 and len(bad.losses) == 2
    assert "step 2" in bad.message
    assert c.to_dict()["models"][1]["training"]["losses"][1] == "nan"
    assert "nan" in c.to_json()  # and the JSON stays valid (allow_nan=False)


def test_real_nan_in_weights_is_caught() -> None:
    torch.manual_seed(0)
    good = resviz.build_model("resnet20", device="cpu")
    bad = resviz.build_model("resnet20", device="cpu")
    with torch.no_grad():
        bad.fc.bias.fill_(math.nan)
    from resviz.studies.data import load_batches

    batches = load_batches("synthetic", 3, 4, (3, 16, 16))
    runs, interrupted = training.train([("good", good), ("bad", bad)], batches, 2, every=None)
    assert not interrupted
    assert [r.status for r in runs] == ["ok", "nan"]
    assert runs[0].steps_done == 2 and runs[1].steps_done == 0


def test_interrupt_keeps_the_steps_done(monkeypatch: pytest.MonkeyPatch) -> None:
    real = training.sgd_step
    count = {"n": 0}

    def interrupting(*args: Any) -> float:
        count["n"] += 1
        if count["n"] == 5:  # step 3, first model
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(training, "sgd_step", interrupting)
    c = compare(["resnet20", "plain20"], steps=6, **SMALL)
    assert c.settings.interrupted and c.settings.steps_done == 2
    assert all(m.training is not None and m.training.status == "interrupted" for m in c.models)
    assert "interrupted" in render_markdown(c)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": ["resnet20"]}, "at least two models, got 1"),
        ({"models": "resnet20"}, "at least two models"),
        ({"models": ["resnet20", "resnet20"]}, "more than once"),
        ({"models": ["resnet20", "nosuchnet"]}, "unknown model"),
        ({"steps": -1}, "steps must be 0 or more"),
        ({"batch": 0}, "batch size must be at least 1"),
        ({"input_size": "3x-32x32"}, "malformed input size|below 1"),
        ({"input_size": "3xbigx32"}, "malformed input size"),
        ({"input_size": "1x32x32"}, "input channel"),
        ({"lr": 0.0}, "learning rate"),
        ({"data": "/nonexistent/folder"}, "does not exist"),
    ],
)
def test_bad_input_is_one_line_error(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"models": ["resnet20", "plain20"], **SMALL}
    args.update(kwargs)
    with pytest.raises(ResvizError, match=message) as info:
        compare(**args)
    assert "\n" not in str(info.value)


def test_other_image_sizes_are_fine() -> None:
    """A spec takes any image size its layers can reduce: a CIFAR net given 40x40 is fine."""
    c = compare(["resnet20", "plain20"], steps=0, batch=2, input_size="3x40x40", device="cpu")
    assert c.settings.input_shape == (2, 3, 40, 40)


def test_input_size_and_batch() -> None:
    from resviz.api.sizes import batch_shape as _input_shape

    assert _input_shape("3x8x8", None) == (8, 3, 8, 8)
    assert _input_shape("2x3x8x8", None) == (2, 3, 8, 8)
    assert _input_shape("2x3x8x8", 5) == (5, 3, 8, 8)
    assert _input_shape((3, 8, 8), 4) == (4, 3, 8, 8)
    assert _input_shape((1, 3, 8, 8), None) == (1, 3, 8, 8)
    # Read as parse_input_size reads it: spaces and commas separate dimensions too.
    assert _input_shape("2 3 8 8", None) == (2, 3, 8, 8)
    assert _input_shape("3, 8, 8", None) == (8, 3, 8, 8)
    assert _input_shape("1x3x8x8", None) == (1, 3, 8, 8)


def test_custom_preact_spec_against_its_plain_twin() -> None:
    """Specs work as well as names; in pre-activation blocks the 3x3 response is the conv output
    where no BN follows it inside the block (He et al. 2016, Fig. 4)."""
    import dataclasses

    spec = dataclasses.replace(resviz.get_spec("preact_resnet164"), name="tiny_preact", layers=(1, 1, 1))
    c = compare([spec, spec.plain()], steps=1, **SMALL)
    res = c.model("tiny_preact")
    assert res.blocks_count == 3 and res.has_skips and not c.models[1].has_skips
    names = [a.name for a in res.act_std]
    assert names == ["conv1", "layer1.0.bn3", "layer2.0.bn3", "layer3.0.bn3"]


def test_interrupt_during_initial_traces_keeps_the_models_traced() -> None:
    """Ctrl-C after the first model's trace: a comparison of that model, marked interrupted."""

    def progress(done: int, _total: int, _label: str) -> None:
        if done == 1:
            raise KeyboardInterrupt

    c = compare(["resnet20", "plain20"], steps=3, progress=progress, **SMALL)
    assert c.settings.interrupted and c.settings.steps_done == 0
    assert [m.name for m in c.models] == ["resnet20"] and c.settings.models == ("resnet20",)
    assert c.models[0].training is None and c.models[0].blocks
    assert "interrupted" in render_markdown(c)


def test_interrupt_before_any_trace_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    from resviz.studies import compare as compare_mod

    def interrupted(*_args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(compare_mod, "_probe", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare(["resnet20", "plain20"], steps=3, **SMALL)
