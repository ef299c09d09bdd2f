"""The one entry point of the science studies: what to study, on which models, at which sizes.

:func:`study` resolves every target as the other entry points do (:mod:`resviz.api.targets`:
names, spec files, ``MODEL@KEY=VALUE`` variants, specs, modules), adds each named network's twin
(the plain twin of a residual preset, He et al. 2015, arXiv:1512.03385, Sec. 4.1; the residual
preset of a plain twin), checks every number against :mod:`resviz.limits` and every real pass
against the memory available (:mod:`resviz.api.preflight`) before anything is built, then runs
one of the four studies:

* ``signal``  Signal Propagation Plots (Brock, De, Smith 2021, arXiv:2101.08692), one seeded
  N(0, 1) batch (default 64 images), :func:`resviz.studies.signal.signal_study`;
* ``shatter`` shattered gradients (Balduzzi et al. 2017, arXiv:1702.08591), ``points`` inputs on a
  line (default 256), :func:`resviz.studies.shatter.shatter_study`;
* ``paths``   gradient per path length (Veit et al. 2016, arXiv:1605.06431, Sec. 5), ``samples``
  subsets per length (default 10) on a batch of 8, residual networks only,
  :func:`resviz.studies.paths.paths_study`;
* ``lesion``  blocks removed at test time (Veit et al. 2016, Sec. 4): each built network is first
  trained ``steps`` SGD steps (default 200, batch 32) on the training split of the digits data
  set at 3x8x8 (their own resolution), then scored on 360 held-out digits,
  :func:`resviz.studies.lesion.lesion_study`.

The result is a :class:`~resviz.records.StudyResult` whose ``settings`` hold the command line
and the Python call that run it again. Models resviz builds (specs, factories) are seeded by ``seed``; a user's
module is measured where it lives and left exactly as it was (so it is never trained or loaded
into here: ``steps`` and ``weights`` apply to networks resviz builds).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resviz import limits
from resviz.api.factories import is_factory
from resviz.api.sizes import SizeLike, check_shape, parse_dims
from resviz.api.targets import (
    Target,
    built_factory,
    label_of,
    measuring_device,
    resolve_model,
    resolve_spec,
    spec_of,
)
from resviz.api.tracing import check_pass
from resviz.errors import ResvizError, quote
from resviz.extras import require
from resviz.measure.state import device_of
from resviz.model.weights import check_checkpoint, load_checkpoint
from resviz.records import StudyKind, StudyResult, shape_str
from resviz.records.signal import TrainGradient
from resviz.records.study import StudyRecord
from resviz.spec import ResNetSpec
from resviz.studies.environment import versions
from resviz.studies.lesion import digits_split, lesion_study
from resviz.studies.paths import paths_study
from resviz.studies.shatter import BN_MODES, shatter_study
from resviz.studies.signal import signal_study
from resviz.studies.training import train
from resviz.zoo import get_spec, skip_twin

Progress = Callable[[int, int, str], None]
Models = str | ResNetSpec | nn.Module | Sequence[str | ResNetSpec | nn.Module]

SIGNAL_BATCH = 64
"""Images in the signal study's batch (Brock et al. 2021 plot SPPs of one batch at initialisation)."""
PATHS_BATCH = 8
"""Images in the paths study's batch (the default of :func:`resviz.studies.paths.paths_study`)."""
SHATTER_POINTS = 256
"""Points on the shattered-gradients line (Balduzzi et al. 2017, Fig. 1 uses 256)."""
PATHS_SAMPLES = 10
"""Random subsets of blocks per path length in the paths study."""
LESION_STEPS = 200
"""SGD steps before a lesion study of a network resviz builds (bench/study_bench_b.py's run)."""
LESION_BATCH = 32
LESION_IMAGE = (3, 8, 8)
"""The digits are 8x8: a larger image only upsamples them."""
LESION_HELD_OUT = 360
LESION_LR = 0.05
MAX_SAMPLES = 10_000
SAMPLES_WHY = "each sample is one backward pass per path length"
MAX_DRAWS = 1000
DRAWS_WHY = "each draw scores the held-out set once per set size"

#: Options each study takes beyond the common ones, passed on to its study function.
OPTIONS: dict[StudyKind, tuple[str, ...]] = {
    StudyKind.SIGNAL: ("train_mode",),
    StudyKind.SHATTER: ("points", "bn_mode", "output_index", "max_lag", "train_gradient"),
    StudyKind.PATHS: ("samples", "ks", "fraction"),
    StudyKind.LESION: ("seeds", "max_k", "blocks", "batch", "lr"),
}


def study_kind(kind: str | StudyKind) -> StudyKind:
    """``kind`` as a :class:`StudyKind`, or a one-line error listing the studies."""
    try:
        return StudyKind(str(kind).strip().lower())
    except ValueError:
        raise ResvizError(f"unknown study {quote(kind)}: choose one of "
                          f"{', '.join(k.value for k in StudyKind)}") from None


@dataclass(frozen=True)
class _Target:
    """One model to study: what names it, its spec (None for a user's module), the module itself
    when the user gave one, and whether it is a twin resviz added."""

    label: str
    given: str
    spec: ResNetSpec | None
    module: nn.Module | None = None
    twin: bool = False
    factory: bool = False
    """Built from ``pkg.mod:factory``: ``given`` names it on the command line."""


def _as_list(models: Models) -> list[Target]:
    if isinstance(models, (str, ResNetSpec, nn.Module)):
        return [models]
    items = list(models)
    if not items:
        raise ResvizError("give at least one model to study")
    return items


def _one(target: Target, seed: int) -> _Target:
    if is_factory(target):  # built here (seeded like a preset), then studied as a module; the command names it
        module = built_factory(str(target), seed)
        return _Target(label_of(module), str(target), spec_of(module), module, factory=True)
    if isinstance(target, nn.Module):
        return _Target(label_of(target), "", spec_of(target), target)
    spec = resolve_spec(target)
    return _Target(spec.name, target if isinstance(target, str) else spec.name, spec)


def _twin_of(t: _Target) -> ResNetSpec | None:
    if t.spec is None or t.module is not None:
        return None
    if t.spec.has_skips:
        return t.spec.plain()
    residual = skip_twin(t.spec.name)
    return get_spec(residual) if residual else None


def _targets(givens: list[_Target], twin: bool, kind: StudyKind, notes: list[str]) -> list[_Target]:
    """The given targets, each followed by its twin when ``twin``, without repeats."""
    out: list[_Target] = []
    for given in givens:
        found = [given]
        other = _twin_of(given) if twin else None
        if twin and given.module is not None:
            notes.append(f"{given.label} is a module, not a resviz preset: studied alone, without a plain twin")
        if other is not None:
            pair = _Target(other.name, other.name, other, twin=True)
            found = [given, pair] if given.spec is not None and given.spec.has_skips else [pair, given]
        out.extend(t for t in found if t.label not in {o.label for o in out})
    if kind is StudyKind.PATHS:
        plain = [t for t in out if t.spec is not None and not t.spec.has_skips]
        if plain and len(plain) < len(out):
            notes.append(f"{', '.join(t.label for t in plain)} left out: a plain net has one path, so the paths "
                         "study needs a residual network")
            out = [t for t in out if t not in plain]
    labels = [t.label for t in out]
    dup = sorted({n for n in labels if labels.count(n) > 1})
    if dup:
        raise ResvizError(f"two models are both named {dup[0]}: give each model once")
    return out


def _check_options(kind: StudyKind, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(OPTIONS[kind]))
    if unknown:
        allowed = ", ".join(OPTIONS[kind]) or "none"
        raise ResvizError(f"the {kind} study takes no option {quote(unknown[0])} (its options: {allowed})")


def _check_values(kind: StudyKind, options: Mapping[str, Any]) -> None:
    """Each option's type and range, before any network is built or trained; what depends on the
    model (a path length against its blocks, ``max_k`` against the removable ones) is checked by the
    study against the model."""
    given = {k: v for k, v in options.items() if v is not None}
    if "output_index" in given:
        limits.bounded(given["output_index"], "output index", limits.MAX_CLASSES, limits.CLASSES_WHY, low=0)
    if "max_k" in given:
        limits.bounded(given["max_k"], "max k", limits.MAX_BLOCKS, limits.BLOCKS_WHY, low=0)
    if "max_lag" in given:
        limits.bounded(given["max_lag"], "max lag", limits.MAX_BATCH, "the lag is below the points")
    for key, allowed in (("bn_mode", BN_MODES), ("train_gradient", tuple(g.value for g in TrainGradient))):
        if key in given and (not isinstance(given[key], str) or given[key] not in allowed):
            raise ResvizError(f"{key} must be one of {', '.join(allowed)}, got {quote(given[key])}")
    if "fraction" in given:
        limits.positive(given["fraction"], "fraction", high=1.0)
    if "lr" in given:
        limits.positive(given["lr"], "learning rate")
    for key, item_check in (("ks", _path_length), ("blocks", _block_name)):
        if key in given:
            if isinstance(given[key], str) or not isinstance(given[key], Sequence):
                raise ResvizError(f"{key} must be a list, got {quote(given[key])}")
            for item in given[key]:
                item_check(item)


def _path_length(k: object) -> None:
    limits.bounded(k, "path length", limits.MAX_BLOCKS, limits.BLOCKS_WHY, low=0)


def _block_name(name: object) -> None:
    if not isinstance(name, str):
        raise ResvizError(f"blocks are named by strings, got {quote(name)}")


def _count(options: Mapping[str, Any], key: str, default: int, high: int, why: str, low: int = 1) -> int:
    value = options.get(key)
    value = default if value is None else value
    return limits.bounded(value, key.replace("_", " "), high, why, low=low)


def _shape(kind: StudyKind, input_size: SizeLike | None, side: tuple[int, int, int], batch: int) -> tuple[int, ...]:
    """The input of ``kind``: NxCxHxW for signal and paths (CxHxW takes the default batch), CxHxW
    for shatter (its batch is the points) and lesion (the digits' image; N is the training batch)."""
    dims = parse_dims(input_size) if input_size is not None else side
    if len(dims) not in (3, 4):
        raise ResvizError(f"input size {quote(input_size)}: need CxHxW or NxCxHxW")
    if kind is StudyKind.SHATTER and len(dims) == 4:
        raise ResvizError(f"input size {quote(input_size)}: the shatter study takes CxHxW (the points form the batch)")
    full = dims if len(dims) == 4 else (batch, *dims)
    check_shape(full)
    return full if kind in (StudyKind.SIGNAL, StudyKind.PATHS, StudyKind.LESION) else tuple(dims)


def _side(kind: StudyKind, targets: list[_Target]) -> tuple[int, int, int]:
    if kind is StudyKind.LESION:
        return LESION_IMAGE
    spec = next((t.spec for t in targets if t.spec is not None), None)
    _, c, h, w = spec.default_input_size if spec is not None else (1, 3, 224, 224)
    return (c, h, w)


@dataclass(frozen=True)
class _Plan:
    kind: StudyKind
    shape: tuple[int, ...]  # N, C, H, W (shatter: C, H, W)
    seed: int
    steps: int
    numbers: dict[str, int]
    options: dict[str, Any]


def _steps(kind: StudyKind, steps: int | None, weights: str | None, targets: list[_Target]) -> int:
    if kind is not StudyKind.LESION:
        if steps is not None:
            raise ResvizError(f"steps are for the lesion study's training; the {kind} study measures the "
                              "weights as they are")
        return 0
    builds = any(t.module is None for t in targets)
    if steps is None:
        return LESION_STEPS if builds and weights is None else 0
    limits.bounded(steps, "steps", limits.MAX_STEPS, limits.STEPS_WHY, low=0)
    if steps and not builds:
        raise ResvizError("steps train networks resviz builds; a module is studied as it is: train it first")
    return steps


def _plan(kind: StudyKind, targets: list[_Target], input_size: SizeLike | None, seed: int, steps: int | None,
          weights: str | None, options: dict[str, Any]) -> _Plan:
    limits.check_seed(seed)
    _check_options(kind, options)
    _check_values(kind, options)
    numbers: dict[str, int] = {}
    batch = {StudyKind.SIGNAL: SIGNAL_BATCH, StudyKind.PATHS: PATHS_BATCH}.get(kind, 1)
    if kind is StudyKind.SHATTER:
        numbers["points"] = _count(options, "points", SHATTER_POINTS, limits.MAX_BATCH,
                                   "the points of the line form one batch", low=3)
    if kind is StudyKind.PATHS:
        numbers["samples"] = _count(options, "samples", PATHS_SAMPLES, MAX_SAMPLES, SAMPLES_WHY)
    if kind is StudyKind.LESION:
        batch = _count(options, "batch", LESION_BATCH, limits.MAX_BATCH, limits.BATCH_WHY)
        if options.get("seeds") is not None:
            limits.bounded(options["seeds"], "seeds", MAX_DRAWS, DRAWS_WHY)
    shape = _shape(kind, input_size, _side(kind, targets), batch)
    rest = {k: v for k, v in options.items() if k not in ("points", "samples", "batch") and v is not None}
    return _Plan(kind, shape, seed, _steps(kind, steps, weights, targets), numbers, rest)


def _pass_shape(plan: _Plan) -> tuple[tuple[int, ...], bool]:
    """The largest real pass of ``plan`` and whether it runs backward (for the memory pre-flight)."""
    if plan.kind is StudyKind.SHATTER:
        return (plan.numbers["points"], *plan.shape), True
    if plan.kind is StudyKind.SIGNAL:
        return plan.shape, False
    return plan.shape, plan.kind is StudyKind.PATHS or plan.steps > 0


def _preflight(plan: _Plan, targets: list[_Target], dev: torch.device) -> None:
    shape, backward = _pass_shape(plan)
    for t in targets:
        subject: nn.Module | ResNetSpec | None = t.module if t.module is not None else t.spec
        assert subject is not None
        where = dev if t.module is None else device_of(t.module)
        check_pass(subject, shape, where, backward=backward, what=f"a {plan.kind} study")



def _check_weights(weights: str | Path | None, targets: list[_Target]) -> None:
    if weights is None:
        return
    built = [t for t in targets if not t.twin]
    if len(built) != 1 or built[0].module is not None:
        raise ResvizError("weights load into one network resviz builds: give one model name with a checkpoint "
                          "(a module already holds its weights)")
    assert built[0].spec is not None
    check_checkpoint(built[0].spec, weights)


def _build(targets: list[_Target], device: str | torch.device, dev: torch.device, seed: int,
           weights: str | Path | None) -> list[tuple[str, nn.Module]]:
    """Every network built on ``dev`` with weights seeded by ``seed`` (and the checkpoint loaded);
    a user's module as it is (``device`` only checked against where it lives)."""
    out = []
    for t in targets:
        if t.module is not None:
            out.append((t.label, resolve_model(t.module, device, seed).model))
            continue
        found = resolve_model(t.spec if t.spec is not None else t.given, dev, seed)
        if weights is not None and not t.twin:
            load_checkpoint(found.model, weights)
        out.append((t.label, found.model))
    return out


def _tick(progress: Progress | None, done: int, total: int, label: str) -> None:
    if progress is not None:
        progress(done, total, label)


def _run_signal(plan: _Plan, models: list[tuple[str, nn.Module]], progress: Progress | None) -> list[StudyRecord]:
    _tick(progress, 0, 1, "signal: " + ", ".join(n for n, _ in models))
    record = signal_study(models, plan.shape, plan.seed, bool(plan.options.get("train_mode", True)))
    _tick(progress, 1, 1, "signal")
    return [record]


def _run_shatter(plan: _Plan, models: list[tuple[str, nn.Module]], progress: Progress | None) -> list[StudyRecord]:
    _tick(progress, 0, 1, "shatter: " + ", ".join(n for n, _ in models))
    record = shatter_study(models, plan.shape, plan.numbers["points"], plan.seed, **plan.options)
    _tick(progress, 1, 1, "shatter")
    return [record]


def _run_paths(plan: _Plan, models: list[tuple[str, nn.Module]], progress: Progress | None,
               weights: str) -> list[StudyRecord]:
    out: list[StudyRecord] = []
    for i, (label, model) in enumerate(models):
        _tick(progress, i, len(models), f"paths: {label}")
        out.append(paths_study(label, model, plan.shape, plan.numbers["samples"], plan.seed, weights=weights,
                               **plan.options))
    _tick(progress, len(models), len(models), "paths")
    return out


def _run_lesion(plan: _Plan, models: list[tuple[str, nn.Module]], built: set[str], progress: Progress | None,
                dev: torch.device) -> list[StudyRecord]:
    n, c, h, w = plan.shape
    batches, held = digits_split((c, h, w), held_out=LESION_HELD_OUT, batch=n, count=plan.steps + 1,
                                 seed=plan.seed, eval_batch=LESION_HELD_OUT)
    total, out = len(models) * (plan.steps + 1), list[StudyRecord]()
    lr = float(plan.options.get("lr", LESION_LR))
    extra = {k: v for k, v in plan.options.items() if k != "lr"}
    for i, (label, model) in enumerate(models):
        base = i * (plan.steps + 1)
        if plan.steps and label in built:
            def tick(done: int, _total: int, name: str, base: int = base) -> None:
                _tick(progress, base + done, total, f"lesion: training {name}")
            _, interrupted = train([(label, model)], batches, plan.steps, lr=lr, device=dev, every=None,
                                   progress=tick)
            if interrupted:
                raise KeyboardInterrupt
        _tick(progress, base + plan.steps, total, f"lesion: {label}")
        out.append(lesion_study(label, model, held, seed=plan.seed, **extra))
    _tick(progress, total, total, "lesion")
    return out


def _weights_text(weights: str | Path | None, plan: _Plan, module: bool) -> str:
    if weights is not None:
        return f"checkpoint {Path(weights).name}"
    if plan.steps:
        return f"trained {plan.steps} steps"
    return "as given" if module else "initialisation"


def _command(kind: StudyKind, given: list[_Target], plan: _Plan, twin: bool, weights: str | Path | None,
             device: str) -> str:
    """The ``resviz study`` command line that runs this study again ("" when a module was given or an
    option has no flag)."""
    if any(t.module is not None and not t.factory for t in given) or plan.options:
        return ""
    words = ["resviz", "study", str(kind), *(t.given for t in given)]
    words += ["--input", shape_str(plan.shape), "--seed", str(plan.seed), "--device", device]
    if not twin:
        words.append("--no-twin")
    if weights is not None:
        words += ["--weights", str(weights)]
    if "points" in plan.numbers:
        words += ["--points", str(plan.numbers["points"])]
    if "samples" in plan.numbers:
        words += ["--samples", str(plan.numbers["samples"])]
    if kind is StudyKind.LESION:
        words += ["--steps", str(plan.steps)]
    return shlex.join(words)


def _settings(plan: _Plan, given: list[_Target], targets: list[_Target], twin: bool, weights: str | Path | None,
              weights_text: str, dev: torch.device, device: str) -> dict[str, str]:
    out = {
        "study": str(plan.kind), "models": ", ".join(t.label for t in targets),
        "input": shape_str(plan.shape), "seed": str(plan.seed), "device": str(dev),
        "twin": "yes" if twin else "no", "weights": weights_text,
    }
    out.update({k: str(v) for k, v in plan.numbers.items()})
    if plan.kind is StudyKind.LESION:
        out.update(steps=str(plan.steps), batch=str(plan.shape[0]), held_out=str(LESION_HELD_OUT),
                   data="digits (scikit-learn), seeded train / held-out split")
    out.update({f"option {k}": repr(v) for k, v in sorted(plan.options.items())})
    out["command"] = _command(plan.kind, given, plan, twin, weights, device)
    out.update({f"version {k}": v for k, v in versions().items()})
    return out


def study(
    kind: str | StudyKind,
    models: Models,
    *,
    input_size: SizeLike | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    twin: bool = True,
    weights: str | Path | None = None,
    steps: int | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> StudyResult:
    """Run the ``kind`` study (signal, shatter, paths, lesion) on ``models`` and their twins.

    ``models``: names, spec files, ``MODEL@KEY=VALUE`` variants, specs or ``nn.Module``s. With
    ``twin`` each named network's twin is added beside it (a module has none: it is studied alone,
    with a note). ``input_size``: NxCxHxW for signal and paths (CxHxW takes the default batch),
    CxHxW for shatter and lesion (lesion's NxCxHxW sets the training batch). ``weights``: a
    checkpoint loaded into the one named network (its twin is left out then). ``steps``: the lesion
    study's SGD steps. ``options``: ``points`` (shatter), ``samples`` (paths), and the study
    function's own (:data:`OPTIONS`). Everything is checked, sizes and memory included, before a
    network is built; ``progress(done, total, label)`` follows the work. The global RNG is left as
    it was.
    """
    what = study_kind(kind)
    notes: list[str] = []
    given = [_one(t, seed) for t in _as_list(models)]  # a factory is built once, seeded by ``seed``
    targets = _targets(given, twin and weights is None, what, notes)
    if weights is not None and twin:
        notes.append("no twin: the checkpoint holds the weights of the model given only")
    plan = _plan(what, targets, input_size, seed, steps, None if weights is None else str(weights), dict(options))
    dev = measuring_device(device)
    _check_weights(weights, targets)
    _preflight(plan, targets, dev)
    if what is StudyKind.LESION:
        require("sklearn.datasets", "data", "the lesion study (digits)")  # before any training
    weights_text = _weights_text(weights, plan, any(t.module is not None for t in targets))
    with torch.random.fork_rng(devices=[]):
        built = _build(targets, device, dev, seed, weights)
        records = _dispatch(plan, built, {t.label for t in targets if t.module is None}, progress, dev, weights_text)
    settings = _settings(plan, given, targets, twin, weights, weights_text, dev, str(device))
    return StudyResult(what, settings, tuple(records), tuple(notes), tuple(t.label for t in targets))


def _dispatch(plan: _Plan, models: list[tuple[str, nn.Module]], built: set[str], progress: Progress | None,
              dev: torch.device, weights: str) -> list[StudyRecord]:
    if plan.kind is StudyKind.SIGNAL:
        return _run_signal(plan, models, progress)
    if plan.kind is StudyKind.SHATTER:
        return _run_shatter(plan, models, progress)
    if plan.kind is StudyKind.PATHS:
        return _run_paths(plan, models, progress, weights)
    return _run_lesion(plan, models, built, progress, dev)


__all__ = ["OPTIONS", "study", "study_kind"]
