"""Records of a gradient-flow comparison: per model, per stage and per block, plus the settings.

What each number means, and where the idea comes from, is documented with the study that
measures it (:mod:`resviz.studies.compare`); these are the plain results, JSON round-trippable.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from resviz.records.codec import build, decode_float, json_safe, stamped
from resviz.records.display import NotebookRepr
from resviz.records.enums import DataKind, ShortcutKind, TrainingStatus
from resviz.records.summary import Summary
from resviz.records.trace import MonitorSeries, Trace

COMPARISON_KIND = "resviz.comparison"


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", DataKind(self.kind))

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        return build(cls, data)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class TrainingRun:
    """One model's run: a loss per step done, how it ended, and the monitored block statistics."""

    model: str
    status: TrainingStatus
    steps_done: int
    losses: tuple[float, ...]
    seconds: float
    message: str = ""
    series: MonitorSeries | None = field(default=None)

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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRun:
        series = data.get("series")
        return cls(
            model=data["model"], status=data["status"], steps_done=int(data["steps_done"]),
            losses=tuple(float(v) for v in decode_float(data.get("losses", []))),
            seconds=float(data["seconds"]), message=data.get("message", ""),
            series=MonitorSeries.from_dict(series) if series else None,
        )


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

    @property
    def status(self) -> TrainingStatus:
        return self.training.status if self.training else TrainingStatus.OK

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "summary"}
        d["trace"] = self.trace.to_dict()
        d["training"] = self.training.to_dict() if self.training else None
        d["status"] = str(self.status)
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

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["models"] = list(self.models)
        d["input_shape"] = list(self.input_shape)
        d["data"] = self.data.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in dataclasses.fields(cls)}
        row = {k: v for k, v in data.items() if k in known}
        row["models"] = tuple(row["models"])
        row["input_shape"] = tuple(row["input_shape"])
        row["data"] = DataInfo.from_dict(row["data"])
        row["versions"] = dict(row.get("versions") or {})
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
        if data.get("kind") != COMPARISON_KIND:
            raise ValueError(f"not a resviz comparison (kind {data.get('kind')!r})")
        return cls(
            models=tuple(ModelResult.from_dict(m) for m in data["models"]),
            settings=Settings.from_dict(data["settings"]),
        )

    def with_command(self, command: str) -> Comparison:
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, command=command))


__all__ = [
    "COMPARISON_KIND", "BlockFlow", "Comparison", "DataInfo", "LayerStd", "ModelResult", "Settings",
    "StageFlow", "TrainingRun",
]
