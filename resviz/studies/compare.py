"""Gradient-flow comparison: why skip connections let very deep networks train, measured.

:func:`run` builds every model from the same seed, traces one forward/backward pass at
initialisation on the same batch, then (optionally) trains all of them for N steps on the same
batches. It returns a :class:`~resviz.records.Comparison`: plain data, rendered as HTML, Markdown
or JSON by :mod:`resviz.render.report`. What each number means is documented in
:mod:`resviz.studies.flow`.

With a held-out share, training is followed on images it never sees (loss and error every
``eval_every`` steps), and with several seeds every model is trained once per seed (built and fed
batches from that seed; the held-out images stay the same), so a difference between two models
can be set against how much one model varies from seed to seed. Only the first seed is traced
and monitored: its run is the one the report draws; the others add their final numbers.

The ``paper`` recipe (:data:`PAPER`) adapts He et al. 2015 (arXiv:1512.03385, Sec. 4.2, CIFAR-10)
to a CPU-sized run on the digits bundled with scikit-learn, where the degradation problem (a
deeper plain net training worse than a shallower one, Fig. 1 and Fig. 6) already shows:

* data ``digits``, 20 % of each class held out (:data:`HELD_OUT_SHARE`), 3x16x16 inputs, batch 64;
* 300 steps of SGD (momentum 0.9, weight decay 1e-4, no augmentation) at lr 0.1 after a warm-up
  at 0.01 over the first 10 % of the steps (:func:`paper_warmup`; the paper warms ResNet-110 up
  at 0.01 until the training error falls below 80 %, about 400 iterations); no decay of the rate,
  as the run ends long before the paper's first decay at 32k iterations;
* held-out evaluation every :func:`paper_eval_every` steps, block statistics every 10th step, one seed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from resviz.measure.tracer import trace
from resviz.records import (
    Comparison,
    ModelResult,
    Settings,
    Summary,
    Trace,
    TrainingRun,
    TrainingStatus,
)
from resviz.records.comparison import Recipe, SeedRun
from resviz.studies.candidates import Candidate
from resviz.studies.data import Batches, load_batches
from resviz.studies.environment import versions
from resviz.studies.flow import init_result, response_stds
from resviz.studies.training import Schedule, train

Progress = Callable[[int, int, str], None]

#: Share of each digit class kept out of training when held-out curves are asked for.
HELD_OUT_SHARE = 0.2
#: Share of the steps run at the warm-up rate in the ``paper`` recipe.
WARMUP_SHARE_OF_STEPS = 0.1
#: Held-out evaluations over a ``paper`` run (besides the one before the first step).
EVALUATIONS = 10

#: What each recipe sets, by option name; an option the user gives replaces its value. ``warmup``
#: and ``eval_every`` of ``paper`` are ``None`` here: they follow the steps (:func:`paper_warmup`,
#: :func:`paper_eval_every`).
RECIPES: dict[Recipe, dict[str, Any]] = {
    Recipe.CUSTOM: {"steps": 0, "batch": None, "input_size": "3x32x32", "data": "synthetic", "lr": 0.05,
                    "every": 1, "warmup": 0, "seeds": 1, "eval_every": 0},
    Recipe.PAPER: {"steps": 300, "batch": 64, "input_size": "3x16x16", "data": "digits", "lr": 0.1,
                   "every": 10, "warmup": None, "seeds": 1, "eval_every": None},
}
PAPER = RECIPES[Recipe.PAPER]


def paper_warmup(steps: int) -> int:
    """The ``paper`` recipe's warm-up: the first 10 % of the steps (rounded up), 30 of 300."""
    return math.ceil(WARMUP_SHARE_OF_STEPS * steps)


def paper_eval_every(steps: int) -> int:
    """The ``paper`` recipe's evaluation period: :data:`EVALUATIONS` evaluations over the run."""
    return max(1, steps // EVALUATIONS)


def seed_list(seed: int, seeds: int) -> tuple[int, ...]:
    """The seeds of a run of ``seeds`` seeds starting at ``seed``: consecutive integers."""
    return tuple(range(seed, seed + seeds))



def run(
    models: Sequence[Candidate],
    summaries: Sequence[Summary],
    shape: tuple[int, int, int, int],
    steps: int = 0,
    data: str | os.PathLike[str] = "synthetic",
    seed: int = 0,
    device: torch.device | None = None,
    lr: float = 0.05,
    every: int = 1,
    progress: Progress | None = None,
    *,
    warmup: int = 0,
    seeds: int = 1,
    eval_every: int = 0,
    recipe: Recipe = Recipe.CUSTOM,
    overrides: tuple[str, ...] = (),
) -> Comparison:
    """Measure gradient flow in ``models`` (``summaries``: their static analyses at one image
    of ``shape``) on batches of ``shape`` at initialisation and,
    with ``steps > 0``, during training (see :func:`resviz.api.compare` for the arguments).

    Every model is built by its candidate with ``seed`` (:mod:`resviz.studies.candidates`) and sees
    the same batches, so the same
    call gives the same numbers. ``warmup`` steps run at a tenth of ``lr``
    (:class:`~resviz.studies.training.Schedule`). With ``eval_every`` > 0 a held-out share of the
    data (:data:`HELD_OUT_SHARE`) is never trained on and is evaluated every ``eval_every`` steps;
    ``seeds`` > 1 trains every model again for each of the seeds after ``seed``. ``recipe`` and
    ``overrides`` are recorded in the settings. Ctrl-C (``KeyboardInterrupt``) stops early and
    returns what was done, with ``settings.interrupted`` set: the training steps done, or, when it
    comes during the initial traces, the models traced so far (no training). Only when no model was
    traced yet does the interrupt propagate.
    """
    dev = device or torch.device("cpu")
    share = HELD_OUT_SHARE if eval_every and steps > 0 else 0.0
    max_classes = min(m.num_classes for m in models)
    batches = load_batches(data, steps + 1, shape[0], shape[1:], seed, max_classes=max_classes, held_out=share)
    schedule = Schedule(lr, warmup if steps > 0 else 0)
    total = len(models) * (steps + 1) + (seeds - 1) * len(models) * steps
    results, built, interrupted = _initial(models, summaries, batches, dev, seed, total, progress)
    models = models[:len(results)]
    runs: list[TrainingRun | None] = [None] * len(models)
    per_seed: list[list[SeedRun]] = [[] for _ in models]
    done_seeds: tuple[int, ...] = ()
    if steps > 0 and not interrupted:
        trained, interrupted = train(built, batches, steps, schedule, dev, every,
                                     _step_progress(progress, built, total), eval_every or None)
        runs = list(trained)
        interrupted = _after_training(results, built, trained, batches, dev, seed) or interrupted
        for rows, r in zip(per_seed, trained, strict=True):
            rows.append(SeedRun.of(seed, r))
        done_seeds = (seed,)
        del built
        if not interrupted:
            more, interrupted = _more_seeds(models, data, shape, seed_list(seed, seeds)[1:], steps, schedule, dev,
                                            share, progress, total)
            for rows, extra in zip(per_seed, more[1], strict=True):
                rows.extend(extra)
            done_seeds += more[0]
    settings = Settings(
        tuple(m.name for m in models), steps, max((r.steps_done for r in runs if r), default=0),
        shape[0], shape, batches.info, seed, str(dev), lr, interrupted, versions(),
        recipe=recipe, overrides=overrides, warmup_steps=schedule.warmup_steps,
        warmup_lr=schedule.at(1) if schedule.warmup_steps else None, seeds=done_seeds,
        eval_every=eval_every if share else 0, every=every,
    )
    return Comparison(
        tuple(
            ModelResult(**r, training=run, seeds=tuple(rows))
            for r, run, rows in zip(results, runs, per_seed, strict=True)
        ),
        settings,
    )


def _more_seeds(
    models: Sequence[Candidate], data: str | os.PathLike[str], shape: tuple[int, int, int, int],
    seeds: Sequence[int], steps: int, schedule: Schedule, dev: torch.device, share: float,
    progress: Progress | None, total: int,
) -> tuple[tuple[tuple[int, ...], list[list[SeedRun]]], bool]:
    """Train fresh models for each further seed (no traces, no block statistics: only the final
    numbers are kept). Returns the seeds completed, one list of runs per model, and whether Ctrl-C
    stopped it (an interrupted seed is dropped: its models did not train as long as the others)."""
    rows: list[list[SeedRun]] = [[] for _ in models]
    done: list[int] = []
    for i, s in enumerate(seeds):
        try:
            batches = load_batches(data, steps + 1, shape[0], shape[1:], s,
                                   max_classes=min(m.num_classes for m in models), held_out=share)
            built = [(m.name, m.build(s, dev).train()) for m in models]
        except KeyboardInterrupt:
            return (tuple(done), rows), True
        offset = len(models) * (steps + 1) + i * len(models) * steps
        trained, interrupted = train(built, batches, steps, schedule, dev, None,
                                     _seed_progress(progress, models, s, offset, total), None)
        if interrupted:
            return (tuple(done), rows), True
        for r, run_ in zip(rows, trained, strict=True):
            r.append(SeedRun.of(s, run_))
        done.append(s)
    return (tuple(done), rows), False


def _seed_progress(
    progress: Progress | None, models: Sequence[Candidate], seed: int, offset: int, total: int,
) -> Progress:
    names = [m.name for m in models]

    def seed_progress(step: int, steps: int, name: str) -> None:
        if progress is not None:
            done = offset + len(names) * (step - 1) + names.index(name) + 1
            progress(done, total, f"seed {seed} step {step}/{steps} {name}")

    return seed_progress


def _initial(
    models: Sequence[Candidate], summaries: Sequence[Summary], batches: Batches, dev: torch.device, seed: int,
    total: int, progress: Progress | None,
) -> tuple[list[dict[str, Any]], list[tuple[str, nn.Module]], bool]:
    """Build and trace every model at initialisation; on Ctrl-C keep what was measured (with
    nothing measured there is no report to write, so the interrupt goes on to the caller)."""
    built: list[tuple[str, nn.Module]] = []
    results: list[dict[str, Any]] = []
    try:
        for i, (cand, summ) in enumerate(zip(models, summaries, strict=True)):
            model = cand.build(seed, dev).train()
            results.append(init_result(cand, summ, model, _probe(model, batches, dev, seed, cand.name)))
            built.append((cand.name, model))
            if progress is not None:
                progress(i + 1, total, f"init {cand.name}")
    except KeyboardInterrupt:
        if not results:
            raise
        return results, built, True
    return results, built, False


def _step_progress(
    progress: Progress | None, built: Sequence[tuple[str, nn.Module]], total: int,
) -> Progress:
    names = [n for n, _ in built]

    def step_progress(step: int, steps: int, name: str) -> None:
        if progress is not None:
            progress(len(names) * step + names.index(name) + 1, total, f"step {step}/{steps} {name}")

    return step_progress


def _probe(model: nn.Module, batches: Batches, dev: torch.device, seed: int, label: str) -> Trace:
    """One traced forward/backward on batch 0, the probe batch shared by every model."""
    x0, y0 = batches[0]
    return trace(model, inputs=x0.to(dev), targets=y0.to(dev), seed=seed, label=label)


def _after_training(
    results: list[dict[str, Any]], built: list[tuple[str, nn.Module]], runs: list[TrainingRun],
    batches: Batches, dev: torch.device, seed: int,
) -> bool:
    """Fig. 7 responses of the trained models on the probe batch; True when Ctrl-C cut it short."""
    try:
        for res, (name, net), run in zip(results, built, runs, strict=True):
            if run.status is TrainingStatus.OK and run.steps_done > 0:
                res["act_std_trained"] = response_stds(_probe(net, batches, dev, seed, name), net)
    except KeyboardInterrupt:
        return True
    return False
