"""Plain records of the two ensemble studies of Veit, Wilber and Belongie 2016 (arXiv:1605.06431).

* :class:`PathsStudy` (Sec. 5, Fig. 6): how many paths of each length a residual network holds and
  how much gradient reaches the input through paths of that length.
* :class:`LesionStudy` (Sec. 4, Fig. 3-5): test loss and error when residual blocks are removed,
  one at a time and in growing random sets.

Frozen dataclasses of numbers, strings and tuples, JSON round-trip through ``to_dict`` and
``from_dict`` (the file starts with ``kind`` and ``schema``). Path counts are exact Python integers
(``C(54, 27)`` does not fit a float's 53-bit mantissa exactly; JSON integers are unbounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resviz.records.codec import build, decode_float, expect_kind, json_safe, stamped

PATHS_KIND = "resviz.paths_study"
LESION_KIND = "resviz.lesion_study"


def _to_dict(kind: str, record: Any) -> dict[str, Any]:
    body = dict(json_safe(record))
    return stamped(kind, body)


@dataclass(frozen=True)
class PathLength:
    """Paths of one length ``k`` (number of residual branches a path runs through).

    ``paths`` = C(n, k) exactly. ``grad_norm`` is the mean L2 norm of dL/d(input) when the backward
    pass runs through the residual branch of exactly k blocks (and the skip of the others),
    averaged over ``samples`` subsets of k blocks; ``grad_norm_err`` its standard error
    (std / sqrt(samples); 0 when every subset was measured, ``exhaustive``).
    ``contribution`` = paths * grad_norm (Veit et al. 2016, Fig. 6(c)).
    """

    k: int
    paths: int
    grad_norm: float
    grad_norm_err: float
    contribution: float
    samples: int = 0
    exhaustive: bool = False


@dataclass(frozen=True)
class PathsSettings:
    """How a paths study was run: input (batch, C, H, W), subsets per length, seed, loss, the share
    of the total contribution the effective range must hold, the BatchNorm mode of the pass, and
    the weights measured as the caller names them (``initialisation``, ``trained 500 steps`` ...)."""

    input_shape: tuple[int, ...]
    samples_per_k: int
    seed: int = 0
    fraction: float = 0.9
    loss: str = "cross entropy, random labels"
    batchnorm: str = "batch statistics (training mode), running statistics restored"
    weights: str = "as given"


@dataclass(frozen=True)
class PathsStudy:
    """Veit et al. 2016, Sec. 5: path-length distribution and gradient per path length.

    ``blocks`` are the residual blocks' names (n = len(blocks)); ``effective_range`` = (lo, hi):
    the shortest contiguous range of measured lengths whose contributions sum to at least
    ``settings.fraction`` of the total over all measured lengths (the larger sum on ties).
    """

    model: str
    blocks: tuple[str, ...]
    settings: PathsSettings
    lengths: tuple[PathLength, ...]
    effective_range: tuple[int, int]
    notes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.blocks)

    def length(self, k: int) -> PathLength:
        for row in self.lengths:
            if row.k == k:
                return row
        raise KeyError(f"no path length {k} in the study of {self.model}")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(PATHS_KIND, self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PathsStudy:
        expect_kind(data, PATHS_KIND)
        lo, hi = data["effective_range"]
        return cls(
            model=data["model"],
            blocks=tuple(data["blocks"]),
            settings=build(PathsSettings, data["settings"]),
            lengths=tuple(build(PathLength, row) for row in data["lengths"]),
            effective_range=(int(lo), int(hi)),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class LesionScore:
    """Mean cross-entropy loss and top-1 error (fraction, 0..1) on the held-out data."""

    loss: float
    error: float


@dataclass(frozen=True)
class LesionBlock:
    """The held-out score with one block removed. ``downsampling``: the block changes the shape
    (stride or width). A block that cannot be removed (a plain block that changes the shape has
    no path to fall back on) has ``removable`` False and NaN scores."""

    name: str
    downsampling: bool
    loss: float
    error: float
    removable: bool = True


@dataclass(frozen=True)
class LesionSet:
    """Removing ``k`` random removable blocks at once, averaged over ``seeds`` draws (Fig. 5):
    means and their standard errors (std / sqrt(seeds))."""

    k: int
    loss: float
    error: float
    loss_err: float
    error_err: float = 0.0
    seeds: int = 0


@dataclass(frozen=True)
class LesionSettings:
    """How a lesion study was run: held-out images, random draws per set size, largest set size, seed."""

    held_out: int
    seeds: int
    max_k: int
    seed: int = 0


@dataclass(frozen=True)
class LesionStudy:
    """Veit et al. 2016, Sec. 4: held-out loss and error with residual blocks removed.

    ``plain``: the model has no shortcuts (a plain twin); removing one of its blocks means
    replacing it by the identity, possible only where the block keeps the shape.
    """

    model: str
    baseline: LesionScore
    blocks: tuple[LesionBlock, ...]
    sets: tuple[LesionSet, ...]
    settings: LesionSettings
    plain: bool = False
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(LESION_KIND, self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LesionStudy:
        expect_kind(data, LESION_KIND)
        base = data["baseline"]
        return cls(
            model=data["model"],
            baseline=LesionScore(decode_float(base["loss"]), decode_float(base["error"])),
            blocks=tuple(build(LesionBlock, row) for row in data["blocks"]),
            sets=tuple(build(LesionSet, row) for row in data["sets"]),
            settings=build(LesionSettings, data["settings"]),
            plain=bool(data.get("plain", False)),
            notes=tuple(data.get("notes", ())),
        )


__all__ = [
    "LESION_KIND", "PATHS_KIND", "LesionBlock", "LesionScore", "LesionSet", "LesionSettings", "LesionStudy",
    "PathLength", "PathsSettings", "PathsStudy",
]
