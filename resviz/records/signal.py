"""Records of two studies at initialisation: signal propagation and shattered gradients.

* :class:`SignalStudy` holds Signal Propagation Plots (Brock, De, Smith 2021, arXiv:2101.08692;
  De & Smith 2020, arXiv:2002.10444): per residual block, the average squared channel mean and the
  average channel variance of the block output, and the variance of the residual branch alone.
* :class:`ShatterStudy` holds the shattered-gradients measurement (Balduzzi et al. 2017,
  arXiv:1702.08591): how correlated the input gradients of one logit are along a line of inputs.

Plain data (numbers, strings, tuples), JSON round trip through ``to_dict``/``from_dict``; the
formulas behind each number are documented in :mod:`resviz.studies.signal` and
:mod:`resviz.studies.shatter`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from resviz.records.codec import Shape, build, expect_kind, json_safe, stamped
from resviz.records.enums import ShortcutKind

SIGNAL_KIND = "resviz.signal_study"
SHATTER_KIND = "resviz.shatter_study"


class BatchNormMode(StrEnum):
    """How BatchNorm normalises during a study: with the batch's own statistics (``train``, what
    the papers' plots at initialisation use) or with its running statistics (``eval``)."""

    TRAIN = "train"
    EVAL = "eval"


class TrainGradient(StrEnum):
    """Which per-point gradient a shattered-gradients study takes when BatchNorm uses batch
    statistics (the points of the line form one batch, so each output depends on every point).

    ``frozen-stats``: the gradient of logit_k(x_i) with respect to x_i with every BatchNorm's batch
    mean and variance held at their values for the batch (one backward pass for all points).
    ``full``: the total derivative, row i of d logit_k(x_i) / d batch, which also follows x_i's
    effect on the batch statistics (one backward pass per point).
    """

    FROZEN_STATS = "frozen-stats"
    FULL = "full"


@dataclass(frozen=True)
class SignalBlock:
    """One block's signal at initialisation (averages over channels, moments over N, H, W).

    ``branch_var`` is the variance of the residual branch's output, the main-path addend of the
    addition; for a plain block (no shortcut, ``shortcut == "none"``) the branch is the whole
    block, so ``branch_var`` equals ``avg_var``.
    """

    name: str
    stage: str
    avg_sq_mean: float
    avg_var: float
    branch_var: float
    shortcut: ShortcutKind = ShortcutKind.NONE

    def __post_init__(self) -> None:
        object.__setattr__(self, "shortcut", ShortcutKind(self.shortcut))


@dataclass(frozen=True)
class SignalModel:
    """The blocks of one model in forward order. ``preact`` says whether its blocks are
    pre-activation (He et al. 2016, arXiv:1603.05027), None when the blocks do not say."""

    name: str
    blocks: tuple[SignalBlock, ...]
    notes: tuple[str, ...] = ()
    preact: bool | None = None

    @property
    def residual(self) -> bool:
        """Whether any block has a shortcut (a plain twin has none)."""
        return any(b.shortcut is not ShortcutKind.NONE for b in self.blocks)

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignalModel:
        return cls(
            name=str(data["name"]),
            blocks=tuple(build(SignalBlock, b) for b in data.get("blocks", ())),
            notes=tuple(data.get("notes", ())),
            preact=data.get("preact"),
        )


@dataclass(frozen=True)
class SignalStudy:
    """Signal Propagation Plots of several models on one seeded N(0, 1) batch of ``input_shape``."""

    input_shape: Shape
    seed: int
    bn_mode: BatchNormMode
    models: tuple[SignalModel, ...]
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "bn_mode", BatchNormMode(self.bn_mode))

    def model(self, name: str) -> SignalModel:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return stamped(SIGNAL_KIND, dict(json_safe(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignalStudy:
        expect_kind(data, SIGNAL_KIND)
        return cls(
            input_shape=tuple(int(v) for v in data["input_shape"]),
            seed=int(data["seed"]),
            bn_mode=BatchNormMode(data["bn_mode"]),
            models=tuple(SignalModel.from_dict(m) for m in data["models"]),
            device=str(data.get("device", "cpu")),
        )


@dataclass(frozen=True)
class ShatterModel:
    """Input gradients of one logit along a line, for one model in one BatchNorm mode.

    ``neighbor_correlation``: mean cosine similarity of the gradients at consecutive points.
    ``autocorrelation[k]``: the normalised autocorrelation at lag k (``autocorrelation[0] == 1``).
    ``grad_norm_*``: the smallest, mean and largest L2 norm of the points' gradients.
    ``residual``: whether any block has a shortcut; ``blocks``: how many blocks the model has (the
    depth that Balduzzi et al. relate the decorrelation to).
    """

    name: str
    mode: BatchNormMode
    neighbor_correlation: float
    autocorrelation: tuple[float, ...]
    grad_norm_min: float
    grad_norm_mean: float
    grad_norm_max: float
    residual: bool = True
    blocks: int = 0
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", BatchNormMode(self.mode))


@dataclass(frozen=True)
class ShatterStudy:
    """Shattered-gradients measurement of several models; ``models`` holds one entry per model and
    BatchNorm mode, model by model in the order given."""

    input_shape: Shape
    points: int
    seed: int
    output_index: int
    max_lag: int
    train_gradient: TrainGradient
    models: tuple[ShatterModel, ...]
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_gradient", TrainGradient(self.train_gradient))

    def entry(self, name: str, mode: BatchNormMode | str) -> ShatterModel:
        for m in self.models:
            if m.name == name and m.mode == mode:
                return m
        raise KeyError((name, str(mode)))

    def to_dict(self) -> dict[str, Any]:
        return stamped(SHATTER_KIND, dict(json_safe(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShatterStudy:
        expect_kind(data, SHATTER_KIND)
        known = {f.name for f in dataclasses.fields(cls)}
        row = {k: v for k, v in data.items() if k in known}
        row["input_shape"] = tuple(int(v) for v in row["input_shape"])
        row["models"] = tuple(build(ShatterModel, m) for m in data["models"])
        return cls(**row)


__all__ = [
    "SHATTER_KIND", "SIGNAL_KIND", "BatchNormMode", "ShatterModel", "ShatterStudy", "SignalBlock",
    "SignalModel", "SignalStudy", "TrainGradient",
]
