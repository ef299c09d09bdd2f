"""One frozen description of every residual network resviz can build.

A :class:`ResNetSpec` says *what* to build; :mod:`resviz.model` turns it into an ``nn.Module``.
The vocabulary follows the papers:

* He et al. 2015, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385): basic and
  bottleneck blocks, shortcut options A (zero-padded identity), B (projection where the shape
  changes) and C (projection everywhere), the ImageNet stem (7x7/2 conv + 3x3/2 max-pool) and the
  CIFAR stem (one 3x3 conv, 16 filters), plain twins without shortcuts.
* He et al. 2016, "Identity Mappings in Deep Residual Networks" (arXiv:1603.05027): pre-activation.
* Xie et al. 2017 (ResNeXt) and Zagoruyko & Komodakis 2016 (Wide ResNet): ``groups`` and
  ``width_per_group`` exactly as torchvision's ``ResNet`` takes them.
* Stride placement in bottlenecks: the 2015 paper strides the first 1x1 convolution; torchvision
  ("ResNet v1.5") strides the 3x3 convolution.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from resviz.errors import ResvizError, one_line


class BlockKind(StrEnum):
    """Residual block type; ``expansion`` is the output/bottleneck width ratio (paper, Fig. 5)."""

    BASIC = "basic"
    BOTTLENECK = "bottleneck"

    @property
    def expansion(self) -> int:
        return 1 if self is BlockKind.BASIC else 4


class Shortcut(StrEnum):
    """Shortcut options of He et al. 2015, Sec. 3.3 and Table 3, plus ``none`` for plain twins."""

    A = "A"  # identity; zero-padded channels and strided subsampling where the shape changes
    B = "B"  # identity, projection (1x1 conv + BN) only where the shape changes (torchvision)
    C = "C"  # projection on every block
    NONE = "none"  # no shortcut at all: the paper's "plain" network


class Stem(StrEnum):
    """Input stem: ImageNet (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) or CIFAR (3x3 conv, BN, ReLU)."""

    IMAGENET = "imagenet"
    CIFAR = "cifar"


class StrideAt(StrEnum):
    """Which bottleneck convolution carries the stage's stride (basic blocks stride their first 3x3)."""

    CONV1X1 = "1x1"  # He et al. 2015 and the original Caffe models
    CONV3X3 = "3x3"  # torchvision ("ResNet v1.5")


def _enum(cls: type[StrEnum], value: Any, field: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise ResvizError(f"invalid {field} {value!r}: choose one of {choices}") from None


@dataclass(frozen=True)
class ResNetSpec:
    """Everything that decides a residual network's layers, parameters and forward function.

    ``widths`` are the per-stage "planes" of torchvision's ``ResNet`` (the bottleneck's inner
    width before ``width_per_group`` scaling); a stage outputs ``widths[i] * block.expansion``
    channels. Strides are 1 for the first stage and 2 for the others, as in every paper preset.
    """

    name: str
    block: BlockKind
    layers: tuple[int, ...]
    widths: tuple[int, ...]
    stem: Stem = Stem.IMAGENET
    stem_width: int = 64
    groups: int = 1
    width_per_group: int = 64
    shortcut: Shortcut = Shortcut.B
    preact: bool = False
    stride_at: StrideAt = StrideAt.CONV3X3
    num_classes: int = 1000
    in_channels: int = 3

    def __post_init__(self) -> None:
        # Accept plain strings and lists (from JSON, YAML or the CLI) and normalise them.
        object.__setattr__(self, "block", _enum(BlockKind, self.block, "block"))
        object.__setattr__(self, "stem", _enum(Stem, self.stem, "stem"))
        object.__setattr__(self, "shortcut", _enum(Shortcut, self.shortcut, "shortcut"))
        object.__setattr__(self, "stride_at", _enum(StrideAt, self.stride_at, "stride_at"))
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "widths", tuple(self.widths))

    # ------------------------------------------------------------------ derived
    @property
    def depth(self) -> int:
        """Weighted layers counted as the papers do: stem conv + block convs + the FC layer."""
        convs = 2 if self.block is BlockKind.BASIC else 3
        return 1 + convs * sum(self.layers) + 1

    @property
    def num_stages(self) -> int:
        return len(self.layers)

    def stage_out_channels(self) -> tuple[int, ...]:
        return tuple(w * self.block.expansion for w in self.widths)

    def inner_width(self, stage: int) -> int:
        """Bottleneck 3x3 width, torchvision's ``int(planes * (width_per_group / 64.0)) * groups``."""
        if self.block is BlockKind.BASIC:
            return self.widths[stage]
        return int(self.widths[stage] * (self.width_per_group / 64.0)) * self.groups

    @property
    def has_skips(self) -> bool:
        return self.shortcut is not Shortcut.NONE

    def plain(self) -> ResNetSpec:
        """The plain twin: the same layers without any shortcut (He et al. 2015, Sec. 4.1); a spec
        without shortcuts is its own twin."""
        if not self.has_skips:
            return self
        return dataclasses.replace(self, name=plain_name(self.name), shortcut=Shortcut.NONE)

    @property
    def default_input_size(self) -> tuple[int, int, int, int]:
        """One image at 224x224 for ImageNet stems (torchvision's ``_ops`` resolution), 32x32 for
        CIFAR stems (He et al. 2015, Sec. 4.2)."""
        side = 32 if self.stem is Stem.CIFAR else 224
        return (1, self.in_channels, side, side)

    # ------------------------------------------------------------------ checks
    def validate(self) -> ResNetSpec:
        """Raise :class:`ResvizError` naming the first impossible value; return self when fine."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ResvizError(f"name = {self.name!r}: must be a non-empty string")
        if not isinstance(self.preact, bool):
            raise ResvizError(f"preact = {self.preact!r}: must be true or false")
        if not self.layers:
            raise ResvizError("layers must list at least one stage")
        if len(self.widths) != len(self.layers):
            raise ResvizError(
                f"widths has {len(self.widths)} entries but layers has {len(self.layers)}: "
                "give one width per stage"
            )
        for i, n in enumerate(self.layers):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ResvizError(f"layers[{i}] = {n!r}: every stage needs at least 1 block")
        for i, w in enumerate(self.widths):
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                raise ResvizError(f"widths[{i}] = {w!r}: widths must be positive integers")
        for field in INT_FIELDS:
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ResvizError(f"{field} = {v!r}: must be a positive integer")
        if self.block is BlockKind.BASIC and (self.groups != 1 or self.width_per_group != 64):
            raise ResvizError(
                "basic blocks support only groups=1 and width_per_group=64 (as torchvision's "
                "BasicBlock); use block=bottleneck for ResNeXt or Wide ResNet"
            )
        for i in range(self.num_stages):
            inner = self.inner_width(i)
            if inner < 1:
                raise ResvizError(
                    f"stage {i + 1}: width {self.widths[i]} x width_per_group "
                    f"{self.width_per_group}/64 rounds to zero channels"
                )
            if inner % self.groups:
                raise ResvizError(
                    f"stage {i + 1}: inner width {inner} is not divisible by groups={self.groups}"
                )
        return self

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, StrEnum):
                d[k] = v.value
            elif isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetSpec:
        if not isinstance(data, dict):
            raise ResvizError("a spec must be a mapping of field names to values")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ResvizError(
                f"unknown spec field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        missing = [f for f in ("name", "block", "layers", "widths") if f not in data]
        if missing:
            raise ResvizError(f"spec is missing required field(s): {', '.join(missing)}")
        for k in ("layers", "widths"):
            if not isinstance(data[k], (list, tuple)):
                raise ResvizError(f"{k} must be a list of integers, got {data[k]!r}")
        return cls(**data).validate()


#: Fields holding one positive integer (``layers`` and ``widths`` hold one per stage).
INT_FIELDS: tuple[str, ...] = ("stem_width", "groups", "width_per_group", "num_classes", "in_channels")


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """``"3,4,6,3"`` (or ``3x4x6x3``, spaces allowed) -> ``(3, 4, 6, 3)``, as typed on a command
    line or in the dashboard; a one-line :class:`ResvizError` otherwise."""
    parts = str(text).replace("x", ",").replace(" ", ",").split(",")
    try:
        values = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        raise ResvizError(f"{what} must be comma-separated integers, e.g. 3,4,6,3 (got {text!r})") from None
    if not values:
        raise ResvizError(f"{what} must list at least one stage, e.g. 3,4,6,3")
    return values


#: How a yes/no field may be written on a command line, in a spec override or in a URL.
TRUE_WORDS: tuple[str, ...] = ("true", "1", "yes", "on")
FALSE_WORDS: tuple[str, ...] = ("false", "0", "no", "off")


def parse_bool(text: str, what: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``, any case) -> bool;
    the one reading of a yes/no value for every surface."""
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ResvizError(f"{what} expects true or false, got {text!r}")


def parse_field(key: str, text: str) -> tuple[str, Any]:
    """One spec field typed as text (``--set KEY=VALUE``, a dashboard URL) -> its name and value:
    integer lists for ``layers``/``widths``, integers for :data:`INT_FIELDS`, a bool for
    ``preact``, the text itself otherwise (enums validate when the spec is built)."""
    key = key.strip().replace("-", "_")
    value = str(text).strip()
    if key in ("layers", "widths"):
        return key, parse_int_list(value, key)
    if key in INT_FIELDS:
        try:
            return key, int(value)
        except ValueError:
            raise ResvizError(f"{key} expects an integer, got {value!r}") from None
    if key == "preact":
        return key, parse_bool(value, key)
    return key, value


def plain_name(name: str) -> str:
    """``resnet34`` -> ``plain34``; ``preact_resnet164`` -> ``plain_preact_resnet164``."""
    if name.startswith("resnet") and name[6:].isdigit():
        return "plain" + name[6:]
    return "plain_" + name


def load_spec_file(path: str | Path) -> ResNetSpec:
    """Read a spec from a ``.json``, ``.yaml`` or ``.yml`` file, with one-line errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResvizError(f"cannot read spec file {p}: {exc.strerror or exc}") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ResvizError(f"cannot parse spec file {p}: {one_line(exc)}") from None
    if isinstance(data, dict) and "name" not in data:
        data = {"name": p.stem, **data}
    return ResNetSpec.from_dict(data)
