"""Records of a gradient-flow comparison: per model, per stage and per block, plus the settings.

What each number means, and where the idea comes from, is documented with the study that
measures it (:mod:`resviz.studies.compare`); these are the plain results, JSON round-trippable.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from resviz.records.codec import build, decode_float, expect_kind, json_safe, stamped
from resviz.records.display import NotebookRepr
from resviz.records.enums import DataKind, ShortcutKind, TrainingStatus
from resviz.records.summary import Summary
from resviz.records.trace import MonitorSeries, Trace

COMPARISON_KIND = "resviz.comparison"


class Recipe(StrEnum):
    """Which defaults a comparison starts from; options the user gives override either.

    ``custom`` is a quick look at gradient flow (synthetic data, no training unless asked).
    ``paper`` adapts the CIFAR recipe of He et al. 2015 (arXiv:1512.03385, Sec. 4.2) to the
    digits bundled with scikit-learn: see :mod:`resviz.studies.compare` for its values.
    """

    CUSTOM = "custom"
    PAPER = "paper"


@dataclass(frozen=True)
class DataInfo:
    """What the batches were drawn from: plain data for the report's settings section."""

    kind: DataKind
    source: str
    num_classes: int
    classes: tuple[str, ...]
    num_images: int
    image_shape: tuple[int, int, int]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    train_images: int = 0  # with a held-out split: the images training draws from (0: no split)
    held_out_images: int = 0  # never trained on, evaluated every ``eval_every`` steps

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", DataKind(self.kind))

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        return build(cls, data)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class HeldOut:
    """Loss and error on the held-out images (never trained on), model in eval mode, at the
    training steps ``steps`` (0: before the first step). Error is the misclassified fraction."""

    steps: tuple[int, ...]
    loss: tuple[float, ...]
    error: tuple[float, ...]

    @property
    def final_loss(self) -> float | None:
        return self.loss[-1] if self.loss else None

    @property
    def final_error(self) -> float | None:
        return self.error[-1] if self.error else None

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeldOut:
        return cls(
            steps=tuple(int(s) for s in data.get("steps", ())),
            loss=tuple(float(v) for v in decode_float(data.get("loss", []))),
            error=tuple(float(v) for v in decode_float(data.get("error", []))),
        )


@dataclass(frozen=True)
class TrainingRun:
    """One model's run: a loss per step done, how it ended, and the monitored block statistics.

    ``errors`` is the training error per step (misclassified fraction of that step's batch,
    before its update, like ``losses``); ``held_out`` the held-out curve when one was evaluated.
    """

    model: str
    status: TrainingStatus
    steps_done: int
    losses: tuple[float, ...]
    seconds: float
    message: str = ""
    series: MonitorSeries | None = field(default=None)
    errors: tuple[float, ...] = ()
    held_out: HeldOut | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", TrainingStatus(self.status))

    @property
    def final_loss(self) -> float | None:
        """The loss of the last step done (NaN where training diverged), ``None`` before any step."""
        return self.losses[-1] if self.losses else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "status": str(self.status), "steps_done": self.steps_done,
            "losses": json_safe(self.losses), "seconds": self.seconds,
            "message": self.message, "series": self.series.to_dict() if self.series else None,
            "errors": json_safe(self.errors), "held_out": self.held_out.to_dict() if self.held_out else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRun:
        series, held = data.get("series"), data.get("held_out")
        return cls(
            model=data["model"], status=data["status"], steps_done=int(data["steps_done"]),
            losses=tuple(float(v) for v in decode_float(data.get("losses", []))),
            seconds=float(data["seconds"]), message=data.get("message", ""),
            series=MonitorSeries.from_dict(series) if series else None,
            errors=tuple(float(v) for v in decode_float(data.get("errors", []))),
            held_out=HeldOut.from_dict(held) if held else None,
        )


#: Training steps at the end of a run whose mean loss and error stand for "the end of training":
#: one step's batch is noisy.
TAIL_STEPS = 20


def tail_mean(values: tuple[float, ...], tail: int = TAIL_STEPS) -> float | None:
    """Mean of the last ``tail`` values (fewer when the run is shorter); ``None`` when empty."""
    last = values[-tail:]
    return sum(last) / len(last) if last else None


@dataclass(frozen=True)
class SeedRun:
    """One seed's training of one model, reduced to its end: the held-out loss and error after the
    last step, and the training loss and error averaged over the last :data:`TAIL_STEPS` steps."""

    seed: int
    status: TrainingStatus
    steps_done: int
    held_out_loss: float | None
    held_out_error: float | None
    train_loss: float | None
    train_error: float | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", TrainingStatus(self.status))

    @classmethod
    def of(cls, seed: int, run: TrainingRun) -> SeedRun:
        held = run.held_out
        return cls(
            seed, run.status, run.steps_done, held.final_loss if held else None,
            held.final_error if held else None, tail_mean(run.losses), tail_mean(run.errors),
        )


@dataclass(frozen=True)
class Spread:
    """Mean and spread of one number over seeds: ``low``/``high`` are the extremes, ``std`` the
    sample standard deviation (0 for one seed)."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def of(cls, values: tuple[float, ...] | list[float]) -> Spread | None:
        """The spread of the finite ``values``; ``None`` when there is none."""
        xs = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not xs:
            return None
        std = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return cls(len(xs), statistics.fmean(xs), std, min(xs), max(xs))

    def overlaps(self, other: Spread) -> bool:
        """Whether the two ranges [low, high] share a value."""
        return self.low <= other.high and other.low <= self.high


@dataclass(frozen=True)
class BlockFlow:
    """Gradient and signal at one block at initialisation (norms over the whole batch)."""

    name: str
    stage: str
    depth: int
    shortcut: ShortcutKind
    grad_main: float
    grad_skip: float
    grad_total: float
    ratio: float | None  # grad_main / grad_skip; None for a plain block (no skip path)
    main_rms: float
    skip_rms: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "shortcut", ShortcutKind(self.shortcut))


@dataclass(frozen=True)
class LayerStd:
    """One point of the Fig. 7 curve: the std of a 3x3 layer's response (after BN when present)."""

    depth: int
    name: str
    stage: str
    std: float


@dataclass(frozen=True)
class StageFlow:
    """One stage's blocks summarised: gradient at its first and last block, shares, response std."""

    name: str
    blocks: int
    grad_first: float
    grad_last: float
    attenuation: float  # grad_first / grad_last inside the stage
    mean_ratio: float | None  # mean of the blocks' main / skip ratios; None without skips
    mean_act_std: float


def _float(value: object) -> float:
    return float(decode_float(value))


@dataclass(frozen=True)
class ModelResult:
    """Everything measured for one model; ``trace`` is the full record behind the numbers.

    ``summary`` (the static analysis the diagrams draw) is not written to JSON: it is recomputed
    from ``spec`` in milliseconds, so a result read back from a file has ``summary=None``.
    """

    name: str
    has_skips: bool
    depth: int
    params: int
    macs: int
    blocks_count: int
    loss_init: float
    grad_first: float
    grad_last: float
    headline: float  # grad_first / grad_last
    blocks: tuple[BlockFlow, ...]
    act_std: tuple[LayerStd, ...]
    stages: tuple[StageFlow, ...]
    spec: dict[str, Any]
    trace: Trace
    summary: Summary | None = field(default=None, repr=False, compare=False)
    training: TrainingRun | None = None
    act_std_trained: tuple[LayerStd, ...] = ()
    seeds: tuple[SeedRun, ...] = ()  # one per seed trained (the first is ``training``'s)

    @property
    def status(self) -> TrainingStatus:
        return self.training.status if self.training else TrainingStatus.OK

    @property
    def held_out_error(self) -> Spread | None:
        """Final held-out error over the seeds, ``None`` without a held-out evaluation."""
        return Spread.of([s.held_out_error for s in self.seeds if s.held_out_error is not None])

    @property
    def held_out_loss(self) -> Spread | None:
        """Final held-out loss over the seeds, ``None`` without a held-out evaluation."""
        return Spread.of([s.held_out_loss for s in self.seeds if s.held_out_loss is not None])

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "summary"}
        d["trace"] = self.trace.to_dict()
        d["training"] = self.training.to_dict() if self.training else None
        d["status"] = str(self.status)
        # derived from ``seeds`` (read back from them, never from these keys): every number in the JSON
        d["held_out_error"], d["held_out_loss"] = self.held_out_error, self.held_out_loss
        return dict(json_safe(d))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelResult:
        training = data.get("training")
        return cls(
            name=data["name"], has_skips=bool(data["has_skips"]), depth=int(data["depth"]),
            params=int(data["params"]), macs=int(data["macs"]), blocks_count=int(data["blocks_count"]),
            loss_init=_float(data["loss_init"]), grad_first=_float(data["grad_first"]),
            grad_last=_float(data["grad_last"]), headline=_float(data["headline"]),
            blocks=tuple(build(BlockFlow, b) for b in data.get("blocks", ())),
            act_std=tuple(build(LayerStd, s) for s in data.get("act_std", ())),
            stages=tuple(build(StageFlow, s) for s in data.get("stages", ())),
            spec=dict(data.get("spec") or {}),
            trace=Trace.from_dict(data["trace"]),
            training=TrainingRun.from_dict(training) if training else None,
            act_std_trained=tuple(build(LayerStd, s) for s in data.get("act_std_trained", ())),
            seeds=tuple(build(SeedRun, s) for s in data.get("seeds", ())),
        )


@dataclass(frozen=True)
class Settings:
    """How the run was made: enough to reproduce it."""

    models: tuple[str, ...]
    steps: int
    steps_done: int
    batch: int
    input_shape: tuple[int, int, int, int]
    data: DataInfo
    seed: int
    device: str
    lr: float
    interrupted: bool
    versions: dict[str, str]
    command: str = ""
    recipe: Recipe = Recipe.CUSTOM
    overrides: tuple[str, ...] = ()  # ``name=value`` of each option the user set over the recipe's
    warmup_steps: int = 0  # steps 1..warmup_steps ran at warmup_lr, the rest at lr
    warmup_lr: float | None = None
    seeds: tuple[int, ...] = ()  # every seed trained; the first is ``seed``, whose run the report draws
    eval_every: int = 0  # held-out evaluation every k-th step and at the end; 0: none
    every: int = 0  # block statistics recorded every k-th step; 0: not written by older versions

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", Recipe(self.recipe))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["models"] = list(self.models)
        d["input_shape"] = list(self.input_shape)
        d["data"] = self.data.to_dict()
        d["recipe"] = str(self.recipe)
        d["overrides"] = list(self.overrides)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in dataclasses.fields(cls)}
        row = {k: v for k, v in data.items() if k in known}
        row["models"] = tuple(row["models"])
        row["input_shape"] = tuple(row["input_shape"])
        row["data"] = DataInfo.from_dict(row["data"])
        row["versions"] = dict(row.get("versions") or {})
        row["overrides"] = tuple(row.get("overrides") or ())
        row["seeds"] = tuple(int(v) for v in row.get("seeds") or ())
        return cls(**row)


@dataclass(frozen=True)
class Comparison(NotebookRepr):
    """The result of a comparison: one :class:`ModelResult` per model and the run's settings."""

    models: tuple[ModelResult, ...]
    settings: Settings

    def model(self, name: str) -> ModelResult:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        body = {"version": 1, "settings": self.settings.to_dict(), "models": [m.to_dict() for m in self.models]}
        return stamped(COMPARISON_KIND, body)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """Read what :meth:`to_dict` wrote, by this or any earlier version (additive changes only)."""
        expect_kind(data, COMPARISON_KIND, "resviz comparison")
        return cls(
            models=tuple(ModelResult.from_dict(m) for m in data["models"]),
            settings=Settings.from_dict(data["settings"]),
        )

    def with_command(self, command: str) -> Comparison:
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, command=command))


__all__ = [
    "COMPARISON_KIND", "TAIL_STEPS", "BlockFlow", "Comparison", "DataInfo", "HeldOut", "LayerStd", "ModelResult",
    "Recipe", "SeedRun", "Settings", "Spread", "StageFlow", "TrainingRun", "tail_mean",
]
