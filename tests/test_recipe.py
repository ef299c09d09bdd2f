"""The ``paper`` recipe of a comparison: warm-up schedule, held-out split and curves, several seeds,
the findings headline, user overrides and the JSON of the new fields.

Every number is checked against a computation written here: the digits read through scikit-learn's
own loader, models evaluated and trained by hand, spreads computed from their definitions.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook
from typer.testing import CliRunner

from resviz.api import compare
from resviz.api.comparing import recipe_options
from resviz.cli import app
from resviz.errors import ResvizError
from resviz.model.resnet import build_model
from resviz.records import Comparison, ModelResult, Recipe, SeedRun, TrainingStatus
from resviz.render.report import render_markdown
from resviz.render.report.tables import findings_context, recipe_headline, settings_table
from resviz.spec import ResNetSpec
from resviz.studies import training
from resviz.studies.data import load_batches, split_indices
from resviz.studies.training import Schedule, evaluate, make_optimizer
from resviz.zoo import derive, get_spec

TINY: dict[str, Any] = {"batch": 8, "input_size": "3x8x8", "device": "cpu"}


def _tiny() -> tuple[ResNetSpec, ResNetSpec]:
    """ResNet-8 (one basic block per stage) and its plain twin."""
    res = derive(get_spec("resnet20"), {"layers": (1, 1, 1), "name": "resnet8"})
    return res, dataclasses.replace(res.plain(), name="plain8")


@pytest.fixture(scope="module")
def seeded() -> Comparison:
    """The paper recipe on the tiny pair, shortened: 4 steps, three seeds."""
    return compare(list(_tiny()), recipe="paper", steps=4, seeds=3, eval_every=2, **TINY)


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return torch.tensor(bunch.images, dtype=torch.float32) / 16.0, torch.tensor(bunch.target, dtype=torch.long)


# -- warm-up -----------------------------------------------------------------------------------


def test_schedule_values_per_step() -> None:
    sched = Schedule(0.1, warmup_steps=3)
    assert [sched.at(s) for s in range(1, 7)] == [0.01, 0.01, 0.01, 0.1, 0.1, 0.1]
    assert [Schedule(0.05).at(s) for s in (1, 2, 100)] == [0.05] * 3
    assert Schedule(0.1, 2, warmup_lr=0.02).at(2) == 0.02
    options, _ = recipe_options("paper", {})
    assert options["warmup"] == 30 and options["steps"] == 300 and options["lr"] == 0.1  # 10 % of 300


def test_training_uses_the_scheduled_rate_at_every_step() -> None:
    """The rate each optimiser step runs with, observed by a global step hook, equals the schedule."""
    res, _ = _tiny()
    torch.manual_seed(0)
    model = build_model(res, device="cpu")
    seen: list[float] = []

    def hook(opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        seen.append(opt.param_groups[0]["lr"])

    handle = register_optimizer_step_pre_hook(hook)
    try:
        runs, _ = training.train([("r", model)], load_batches("synthetic", 7, 4, (3, 8, 8)), 6,
                                 Schedule(0.1, 2), every=None)
    finally:
        handle.remove()
    assert runs[0].steps_done == 6
    assert seen == [0.01, 0.01, 0.1, 0.1, 0.1, 0.1]


# -- held-out split ----------------------------------------------------------------------------


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    _, labels = _digits()
    train, held = split_indices(labels, 0.2)
    again_train, again_held = split_indices(labels.clone(), 0.2)
    assert torch.equal(train, again_train) and torch.equal(held, again_held)
    assert set(train.tolist()).isdisjoint(held.tolist())
    assert sorted(train.tolist() + held.tolist()) == list(range(len(labels)))
    for c in range(10):
        n_c = int((labels == c).sum())
        assert int((labels[held] == c).sum()) == round(0.2 * n_c)
    # the same held-out images whatever the run's seed
    for seed in (0, 5):
        b = load_batches("digits", 2, 4, (1, 8, 8), seed, held_out=0.2)
        assert b.info.held_out_images == len(held) and b.info.train_images == len(train)
        assert b.held_out is not None and torch.equal(b.held_out[1], labels[held])


def test_training_batches_come_from_the_training_images_only() -> None:
    images, labels = _digits()
    train, held = split_indices(labels, 0.2)
    x = images.unsqueeze(1)  # 8x8 at 8x8: the resize is the identity
    mean, std = x[train].mean(), x[train].std()
    expected_train = (x[train] - mean) / std
    expected_held = (x[held] - mean) / std
    count, batch = 30, 64  # 1,920 images: more than one pass over the 1,438 training images
    b = load_batches("digits", count, batch, (1, 8, 8), seed=3, held_out=0.2)
    assert b.held_out is not None
    assert torch.allclose(b.held_out[0], expected_held, atol=1e-5)
    pairs = zip(expected_train, labels[train], strict=True)
    rows = {tuple(np.round(r.flatten().numpy(), 4)): int(lab) for r, lab in pairs}
    drawn = 0
    for i in range(count):
        xb, yb = b[i]
        for r, lab in zip(xb, yb, strict=True):
            assert rows.get(tuple(np.round(r.flatten().numpy(), 4))) == int(lab)  # a training image, its label
            drawn += 1
    assert drawn == count * batch


def test_held_out_needs_digits() -> None:
    with pytest.raises(ResvizError, match="needs --data digits"):
        compare(list(_tiny()), steps=2, eval_every=1, data="synthetic", **TINY)


# -- held-out and training curves against direct computations -----------------------------------


def _direct_eval(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    return float(F.cross_entropy(out, y)), float((out.argmax(1) != y).float().mean())


def test_evaluate_matches_a_direct_evaluation_and_leaves_the_model_as_it_was() -> None:
    res, _ = _tiny()
    torch.manual_seed(1)
    model = build_model(res, device="cpu").train()
    b = load_batches("digits", 1, 4, (3, 8, 8), held_out=0.2)
    assert b.held_out is not None
    state = copy.deepcopy(model.state_dict())
    loss, err = evaluate(model, *b.held_out, chunk=100)  # several chunks, one a partial one
    assert all(m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN statistics untouched
    assert all(p.grad is None for p in model.parameters())
    direct = _direct_eval(copy.deepcopy(model), *b.held_out)
    assert loss == pytest.approx(direct[0], rel=1e-5) and err == pytest.approx(direct[1], abs=1e-6)


def test_curves_equal_a_hand_written_training_loop() -> None:
    """Train error per step (on its batch, before its update), held-out loss and error at steps 0,
    2, 4 and 5: replayed by hand on a copy of the model with the same optimiser and schedule."""
    res, _ = _tiny()
    torch.manual_seed(2)
    model = build_model(res, device="cpu").train()
    twin = copy.deepcopy(model)
    b = load_batches("digits", 6, 8, (3, 8, 8), seed=4, held_out=0.2)
    assert b.held_out is not None
    sched = Schedule(0.1, 2)
    runs, _ = training.train([("r", model)], b, 5, sched, every=None, eval_every=2)
    run = runs[0]
    opt = make_optimizer(twin, sched.at(1))
    errors, losses, held = [], [], {0: _direct_eval(twin, *b.held_out)}
    for step in range(1, 6):
        for g in opt.param_groups:
            g["lr"] = sched.at(step)
        x, y = b[step]
        opt.zero_grad()
        out = twin(x)
        loss = F.cross_entropy(out, y)
        errors.append(float((out.argmax(1) != y).float().mean()))
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
        if step % 2 == 0 or step == 5:
            held[step] = _direct_eval(twin, *b.held_out)
    assert run.losses == pytest.approx(losses, rel=1e-4)
    assert run.errors == pytest.approx(errors, abs=1e-6)
    assert run.held_out is not None and run.held_out.steps == (0, 2, 4, 5)
    assert run.held_out.loss == pytest.approx([held[s][0] for s in (0, 2, 4, 5)], rel=1e-4)
    assert run.held_out.error == pytest.approx([held[s][1] for s in (0, 2, 4, 5)], abs=1e-6)


# -- seeds -------------------------------------------------------------------------------------


def test_seed_spread_is_computed_from_the_seeds(seeded: Comparison) -> None:
    assert seeded.settings.seeds == (0, 1, 2)
    for m in seeded.models:
        values = [s.held_out_error for s in m.seeds]
        assert [s.seed for s in m.seeds] == [0, 1, 2] and all(v is not None for v in values)
        xs = [float(v) for v in values if v is not None]
        mean = sum(xs) / 3
        spread = m.held_out_error
        assert spread is not None and spread.n == 3
        assert spread.mean == pytest.approx(mean)
        assert spread.std == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in xs) / 2))
        assert (spread.low, spread.high) == (min(xs), max(xs))
        loss = m.held_out_loss
        assert loss is not None and loss.mean == pytest.approx(sum(s.held_out_loss or 0 for s in m.seeds) / 3)
        # the first seed's row is the run the report draws
        assert m.training is not None and m.training.held_out is not None
        assert m.seeds[0].held_out_error == m.training.held_out.error[-1]
        assert m.seeds[0].train_loss == pytest.approx(sum(m.training.losses) / len(m.training.losses))
    assert len({s.held_out_loss for s in seeded.models[0].seeds}) == 3  # the seeds really differ


def test_a_further_seed_equals_a_run_started_from_it(seeded: Comparison) -> None:
    alone = compare(list(_tiny()), recipe="paper", steps=4, seed=2, eval_every=2, **TINY)
    for multi, single in zip(seeded.models, alone.models, strict=True):
        a, b = multi.seeds[2], single.seeds[0]
        assert a.seed == b.seed == 2
        assert a.held_out_loss == pytest.approx(b.held_out_loss, rel=1e-5)
        assert a.held_out_error == pytest.approx(b.held_out_error, abs=1e-6)


# -- the findings headline ---------------------------------------------------------------------


def _model(base: ModelResult, name: str, depth: int, skips: bool, errors: list[float]) -> ModelResult:
    seeds = tuple(SeedRun(i, TrainingStatus.OK, 300, 1.0, e, 0.1, 0.01) for i, e in enumerate(errors))
    return dataclasses.replace(base, name=name, depth=depth, has_skips=skips, seeds=seeds)


def _headline(seeded: Comparison, rows: list[tuple[str, int, bool, list[float]]]) -> list[str]:
    base = seeded.models[0]
    models = tuple(_model(base, *row) for row in rows)
    return recipe_headline(Comparison(models, seeded.settings))


def test_headline_reports_the_degradation_problem_and_equal_depth(seeded: Comparison) -> None:
    lines = _headline(seeded, [
        ("resnet20", 20, True, [0.05]), ("plain20", 20, False, [0.10]),
        ("resnet56", 56, True, [0.06]), ("plain56", 56, False, [0.40]),
    ])
    assert lines == [
        "plain56 is worse than plain20 (the degradation problem): held-out error 40.0 % vs 10.0 %",
        "resnet20 beats plain20 at equal depth: held-out error 5.0 % vs 10.0 %",
        "resnet56 beats plain56 at equal depth: held-out error 6.0 % vs 40.0 %",
        "resnet56 vs resnet20: too short to tell with one seed (held-out error 6.0 % vs 5.0 %)",
    ]


def test_headline_when_the_paper_is_not_reproduced(seeded: Comparison) -> None:
    lines = _headline(seeded, [
        ("plain20", 20, False, [0.30]), ("resnet56", 56, True, [0.50]), ("plain56", 56, False, [0.20]),
    ])
    assert lines == [
        "plain56 is not worse than plain20 (no degradation seen): held-out error 20.0 % vs 30.0 %",
        "resnet56 does not beat plain56 at equal depth: held-out error 50.0 % vs 20.0 %",
    ]


def test_headline_deeper_residual_with_several_seeds(seeded: Comparison) -> None:
    within = _headline(seeded, [("resnet56", 56, True, [0.04, 0.06, 0.08]), ("resnet20", 20, True, [0.05, 0.07])])
    assert within == [
        "resnet56 vs resnet20: too short to tell, the difference is within the seeds' spread (held-out error "
        "6.0 % (range 4.0 % to 8.0 % over 3 seeds) vs 6.0 % (range 5.0 % to 7.0 % over 2 seeds))"
    ]
    better = _headline(seeded, [("resnet56", 56, True, [0.01, 0.02]), ("resnet20", 20, True, [0.05, 0.07])])
    assert better[0].startswith("resnet56 beats resnet20: deeper is better with shortcuts (held-out error 1.5 %")
    worse = _headline(seeded, [("resnet56", 56, True, [0.10, 0.12]), ("resnet20", 20, True, [0.05, 0.07])])
    assert worse[0].startswith("resnet56 is worse than resnet20 even with shortcuts (held-out error 11.0 %")


def test_headline_notes_overlapping_seeds_and_needs_held_out_numbers(seeded: Comparison) -> None:
    lines = _headline(seeded, [("plain56", 56, False, [0.2, 0.4]), ("plain20", 20, False, [0.1, 0.3])])
    assert lines[0].endswith("; the two ranges overlap across seeds")
    assert "(the degradation problem)" in lines[0]
    assert _headline(seeded, [("plain56", 56, False, []), ("plain20", 20, False, [])]) == []


def test_headline_of_a_real_run_is_in_the_report_and_the_cli(seeded: Comparison) -> None:
    res, plain = seeded.model("resnet8").held_out_error, seeded.model("plain8").held_out_error
    assert res is not None and plain is not None
    lines = recipe_headline(seeded)
    verb = "beats" if res.mean < plain.mean else "does not beat"
    assert len(lines) == 1 and lines[0].startswith(f"resnet8 {verb} plain8 at equal depth: held-out error ")
    assert f"{100 * res.mean:.1f} %" in lines[0] and f"{100 * plain.mean:.1f} %" in lines[0]
    md = render_markdown(seeded)
    assert lines[0].split(":")[0] in md and "Held-out images, end of training" in md
    context = findings_context(seeded)
    assert context is not None and context in md
    assert "after 4 steps of batch 8 (lr 0.01 for 1 warm-up step, then 0.1)" in context
    assert "on the 359 held-out images of digits, never trained on (1,438 for training), 3 seeds (0, 1, 2)" in context


# -- overrides ---------------------------------------------------------------------------------


def test_paper_recipe_values_and_user_overrides() -> None:
    options, overrides = recipe_options(Recipe.PAPER, {"steps": None, "lr": None})
    assert options == {"steps": 300, "batch": 64, "input_size": "3x16x16", "data": "digits", "lr": 0.1,
                       "every": 10, "warmup": 30, "seeds": 1, "eval_every": 30}
    assert overrides == ()
    c = compare(list(_tiny()), recipe="paper", steps=4, lr=0.05, warmup=1, **TINY)
    s = c.settings
    assert (s.steps, s.batch, s.input_shape, s.lr, s.warmup_steps) == (4, 8, (8, 3, 8, 8), 0.05, 1)
    assert s.warmup_lr == pytest.approx(0.005) and s.eval_every == 1  # steps // 10, at least 1
    assert s.data.kind == "digits" and s.recipe is Recipe.PAPER and s.every == 10  # the recipe's
    assert set(s.overrides) == {"steps=4", "lr=0.05", "warmup=1", "batch=8", "input_size=3x8x8"}
    rows = {row[0]: row[1] for row in settings_table(c)[1]}
    assert "lr=0.05" in rows["overridden by the user"] and rows["recipe"].startswith("paper")
    with pytest.raises(ResvizError, match="unknown recipe"):
        compare(list(_tiny()), recipe="fast", **TINY)


def test_cli_recipe_with_overrides(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, [
        "compare", "resnet20", "plain20", "--recipe", "paper", "--steps", "2", "--batch", "4", "--input", "3x8x8",
        "--lr", "0.02", "--device", "cpu", "-q", "-o", str(out),
    ])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    s = data["settings"]
    assert (s["recipe"], s["steps"], s["lr"], s["warmup_steps"], s["warmup_lr"]) == ("paper", 2, 0.02, 1, 0.002)
    assert "lr=0.02" in s["overrides"] and s["data"]["kind"] == "digits"
    err = {m["name"]: m["held_out_error"]["mean"] for m in data["models"]}
    assert f"resnet20: final held-out error {100 * err['resnet20']:.1f} %" in res.output
    assert "resnet20" in res.output and "at equal depth" in res.output


# -- JSON ---------------------------------------------------------------------------------------


def test_new_fields_round_trip_and_old_json_still_reads(seeded: Comparison) -> None:
    data = json.loads(seeded.to_json())
    back = Comparison.from_dict(data)
    assert back.settings == seeded.settings
    for a, b in zip(back.models, seeded.models, strict=True):
        assert a.seeds == b.seeds and a.training == b.training and a.held_out_error == b.held_out_error
    m = data["models"][0]
    assert m["training"]["held_out"]["steps"] == [0, 2, 4] and len(m["training"]["errors"]) == 4
    assert m["held_out_error"]["n"] == 3 and len(m["seeds"]) == 3
    assert data["settings"]["data"]["held_out_images"] == 359
    # a file written before these fields existed
    for key in ("seeds", "held_out_error", "held_out_loss"):
        m.pop(key)
    for key in ("errors", "held_out"):
        m["training"].pop(key)
    for key in ("recipe", "overrides", "warmup_steps", "warmup_lr", "seeds", "eval_every", "every"):
        data["settings"].pop(key)
    old = Comparison.from_dict(data)
    assert old.settings.recipe is Recipe.CUSTOM and old.settings.seeds == ()
    assert old.models[0].seeds == () and old.models[0].held_out_error is None
    assert old.models[0].training is not None and old.models[0].training.held_out is None
