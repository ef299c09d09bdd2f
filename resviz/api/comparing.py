"""A gradient-flow comparison of several targets, checked before anything is built or trained.

A recipe (:class:`~resviz.records.comparison.Recipe`) supplies the defaults of the run; every
option the caller passes (anything but ``None``) overrides the recipe's value and is recorded in
``settings.overrides``, so a report says which of its settings were not the recipe's.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from resviz import limits
from resviz.api.factories import is_factory
from resviz.api.preflight import check_need
from resviz.api.sizes import SizeLike, batch_shape, parse_dims
from resviz.api.summaries import factory_summary
from resviz.api.targets import Target, built_factory, label_of, measuring_device, resolve_spec
from resviz.errors import ResvizError, clip, one_line, quote
from resviz.measure.compiled import original
from resviz.measure.memory import compare_need
from resviz.measure.ownership import check_free
from resviz.measure.static import analyze_module, analyze_spec, logits_width, weighted_depth
from resviz.records import Comparison, Summary
from resviz.records.comparison import Recipe
from resviz.spec import ResNetSpec
from resviz.studies.candidates import Build, Candidate
from resviz.studies.compare import RECIPES, Progress, paper_eval_every, paper_warmup, run
from resviz.studies.data import data_bytes

#: Most seeds one comparison trains: each seed trains every model again.
MAX_SEEDS = 100


Models = Sequence[Target] | Mapping[str, Target]
"""What a comparison takes: targets (names, spec files, specs, modules, ``pkg.mod:factory``), or a
mapping from the name each should carry in the report to its target."""


def _named(models: Models) -> list[tuple[str | None, Target]]:
    """``(name or None, target)`` pairs; at least two, each name given once and not empty."""
    if isinstance(models, (str, ResNetSpec, nn.Module)):
        return _too_few(1)
    if isinstance(models, Mapping):
        named: list[tuple[str | None, Target]] = [(clip(str(k).strip()), v) for k, v in models.items()]
        if any(not n for n, _ in named):
            raise ResvizError("a model's name in the dict is empty: name each model")
    else:
        named = [(None, m) for m in models]  # any iterable, once
    return named if len(named) >= 2 else _too_few(len(named))


def _too_few(count: int) -> list[tuple[str | None, Target]]:
    raise ResvizError(f"a comparison needs at least two models, got {count}")


def _module_candidate(name: str | None, module: nn.Module, shape: tuple[int, ...]) -> tuple[Candidate, Summary]:
    """The user's module: summarised where it is, copied for every training run (it is never trained
    itself, and its weights are the ones given for every seed). The copies keep the module's hooks:
    they may be part of what it computes (``weight_norm``'s are)."""
    module = original(module)
    label = name or label_of(module)
    check_free(module, label)
    if any(p.device.type == "meta" for p in module.parameters()):
        raise ResvizError(f"{label} is on the meta device: it has no weights to train")
    summ = analyze_module(module, shape, label=label)

    def build(_seed: int, device: torch.device) -> nn.Module:
        try:
            copied = copy.deepcopy(module)
        except Exception as exc:  # a module holding something that cannot be copied
            raise ResvizError(f"cannot copy {label} to train it: {one_line(exc)[:160]}; pass a factory "
                              "(pkg.mod:factory) instead") from None
        return copied.to(device)

    return _foreign(label, build, module, shape, summ), summ


def _factory_candidate(name: str | None, target: str, shape: tuple[int, ...]) -> tuple[Candidate, Summary]:
    """A model ``pkg.mod:factory`` builds: counted here (on the meta device where the factory allows
    it, :func:`~resviz.api.summaries.factory_summary`: nothing is allocated before the memory check,
    and a failing factory stops the run before any training), then built, seeded, for every run."""
    label = name or target.strip()
    module, summ = factory_summary(target, shape, label)

    def build(run_seed: int, device: torch.device) -> nn.Module:
        built = built_factory(target, run_seed)
        if any(t.device.type == "meta" for t in (*built.parameters(), *built.buffers())):
            raise ResvizError(f"{quote(target)} builds its model on the meta device: it has no weights to train")
        return built.to(device)

    return _foreign(label, build, module, shape, summ), summ


def _foreign(label: str, build: Build, module: nn.Module, shape: tuple[int, ...], summ: Summary) -> Candidate:
    return Candidate(label, build, logits_width(module, shape, label), bool(summ.blocks), weighted_depth(summ))


def _candidates(
    named: list[tuple[str | None, Target]], shape: tuple[int, ...],
) -> tuple[list[Candidate], list[Summary]]:
    """Every target as a :class:`~resviz.studies.candidates.Candidate` with its static analysis at
    one image of ``shape`` (which refuses channels or sizes a model cannot take), in the order given."""
    out: list[tuple[Candidate, Summary]] = []
    for name, target in named:
        if isinstance(target, nn.Module):
            out.append(_module_candidate(name, target, shape))
        elif is_factory(target):
            out.append(_factory_candidate(name, str(target), shape))
        else:
            spec = resolve_spec(target)
            spec = dataclasses.replace(spec, name=name).validate() if name else spec
            out.append((Candidate.of_spec(spec), analyze_spec(spec, shape)))
    names = [c.name for c, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        hint = "" if any(n for n, _ in named) else (" (name your own modules with a dict: "
                                                    "compare({'mine': model, 'ref': 'resnet18'}))")
        raise ResvizError(f"model {dup[0]} is given more than once; give each model a name of its own{hint}")
    return [c for c, _ in out], [s for _, s in out]


def _check_numbers(steps: int, lr: float, every: int, seed: int) -> None:
    """Steps, learning rate, ``every`` and seed, within :mod:`resviz.limits`, before any work."""
    for value, what in ((steps, "steps"), (every, "every")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ResvizError(f"{what} must be an integer, got {clip(repr(value))}")
    if steps < 0:
        raise ResvizError(f"steps must be 0 or more, got {clip(steps)}")
    limits.positive(lr, "learning rate")
    if every < 1:
        raise ResvizError(f"every must be at least 1, got {clip(every)}")
    limits.bounded(steps, "steps", limits.MAX_STEPS, limits.STEPS_WHY, low=0)
    limits.bounded(every, "every", limits.MAX_STEPS, limits.STEPS_WHY)
    limits.check_seed(seed)


def _check_training(warmup: int, seeds: int, eval_period: int, seed: int) -> None:
    """Warm-up steps, number of seeds and evaluation period: integers in range, before any work."""
    for value, what, low, high, why in (
        (warmup, "warmup", 0, limits.MAX_STEPS, limits.STEPS_WHY),
        (eval_period, "eval_every", 0, limits.MAX_STEPS, limits.STEPS_WHY),
        (seeds, "seeds", 1, MAX_SEEDS, "every seed trains every model again"),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ResvizError(f"{what} must be an integer, got {clip(repr(value))}")
        limits.bounded(value, what, high, why, low=low)
    limits.check_seed(seed + seeds - 1)


def recipe_options(recipe: Recipe | str, given: Mapping[str, object]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The options of a run: ``recipe``'s values, replaced by each option in ``given`` that is not
    ``None``. Returns them and, for the ``paper`` recipe, ``name=value`` of each replaced value
    (what the report lists as overridden; a custom run has nothing to override).

    The paper recipe's warm-up and evaluation period follow the steps when not given
    (:func:`resviz.studies.compare.paper_warmup`, :func:`~resviz.studies.compare.paper_eval_every`).
    """
    try:
        kind = Recipe(str(recipe).strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Recipe)
        raise ResvizError(f"unknown recipe {clip(repr(recipe))}: use one of {names}") from None
    options = dict(RECIPES[kind])
    chosen = {k: v for k, v in given.items() if v is not None}
    options.update(chosen)
    if kind is Recipe.PAPER:
        steps = options["steps"]
        if options["warmup"] is None:
            options["warmup"] = paper_warmup(steps) if isinstance(steps, int) else 0
        if options["eval_every"] is None:
            options["eval_every"] = paper_eval_every(steps) if isinstance(steps, int) else 0
    overrides = tuple(
        f"{k}={v}" for k, v in chosen.items() if kind is Recipe.PAPER and RECIPES[kind].get(k) != v
    )
    return options, overrides


def compare(
    models: Models,
    steps: int | None = None,
    batch: int | None = None,
    input_size: SizeLike | None = None,
    data: str | os.PathLike[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    lr: float | None = None,
    every: int | None = None,
    progress: Progress | None = None,
    recipe: Recipe | str = Recipe.CUSTOM,
    seeds: int | None = None,
    warmup: int | None = None,
    eval_every: int | None = None,
) -> Comparison:
    """Measure gradient flow in ``models`` at initialisation and, with ``steps > 0``, during training.

    ``models`` are names, spec files, specs, ``pkg.mod:factory`` targets or modules, or a mapping from
    the names the report should use to such targets. resviz's models and factory models are built
    anew, seeded, for every seed; a module is copied for every run, so it is never trained itself
    and starts from its own weights whatever the seed (the seed changes the batches only).

    ``recipe`` gives the defaults: ``custom`` (no steps, batch 8, 3x32x32, synthetic data, lr
    0.05, block statistics every step) or ``paper`` (He et al. 2015, arXiv:1512.03385, Sec. 4.2,
    adapted to the digits: see :mod:`resviz.studies.compare`); any other argument given (not
    ``None``) overrides the recipe's value. ``input_size`` is ``CxHxW`` (or ``NxCxHxW``, whose N is
    the batch unless ``batch`` is given; with the paper recipe an ``NxCxHxW`` size given without a
    batch keeps its N). ``data`` is ``synthetic``, ``digits`` or an ImageFolder-style directory.
    ``warmup`` steps run at a tenth of ``lr``; ``eval_every`` > 0 holds 20 % of the digits out of
    training and evaluates every model on them every ``eval_every`` steps and at the end;
    ``seeds`` trains every model once per seed (``seed``, ``seed + 1`` ...). Every model is built
    after ``torch.manual_seed(seed)`` and sees the same batches, so the same call gives the same
    numbers. ``progress(done, total, label)`` is called after each traced model and training step.
    Ctrl-C returns what was done, with ``settings.interrupted`` set
    (:func:`resviz.studies.compare.run`). The largest memory the run needs (every model with its
    gradients and momentum, the largest traced pass, what the data set holds) is checked before anything is
    built (:mod:`resviz.api.preflight`). The result renders with
    :func:`resviz.render.report.render_html` and :func:`~resviz.render.report.render_markdown`.
    """
    given = {"steps": steps, "batch": batch, "input_size": input_size, "data": data, "lr": lr, "every": every,
             "warmup": warmup, "seeds": seeds, "eval_every": eval_every}
    o, overrides = recipe_options(recipe, given)
    kind = Recipe(str(recipe).strip().lower())
    if kind is Recipe.PAPER and batch is None and input_size is not None and len(parse_dims(input_size)) == 4:
        o["batch"] = None  # the N of an NxCxHxW size the user gave is the batch
    named = _named(models)  # read once (any iterable) and counted before anything else is checked
    _check_numbers(o["steps"], o["lr"], o["every"], seed)
    _check_training(o["warmup"], o["seeds"], o["eval_every"], seed)
    dev = measuring_device(device)
    shape = batch_shape(o["input_size"], o["batch"])
    cands, summaries = _candidates(named, (1, *shape[1:]))
    names = ", ".join(c.name for c in cands)
    need = compare_need(summaries, shape[0], o["steps"], data_bytes(o["data"], o["steps"] + 1, shape[0], shape[1:]))
    check_need(f"a comparison of {names}", need, dev, shape)  # before building
    return run(
        cands, summaries, shape, o["steps"], o["data"], seed, dev, o["lr"], o["every"], progress,
        warmup=o["warmup"], seeds=o["seeds"], eval_every=o["eval_every"], recipe=kind, overrides=overrides,
    )


__all__ = ["MAX_SEEDS", "Models", "compare", "recipe_options"]
