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
* Normalisation and initialisation (``norm``, ``init``): BatchNorm with torchvision's He
  initialisation by default; networks without normalisation and the initialisations that train
  them: Fixup (Zhang, Dauphin & Ma 2019, arXiv:1901.09321), SkipInit (De & Smith 2020,
  arXiv:2002.10444) and ReZero (Bachlechner et al. 2020, arXiv:2003.04887).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from resviz import limits
from resviz.errors import ResvizError, clip, one_line, quote


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


class Norm(StrEnum):
    """Normalisation layers: BatchNorm after every convolution as in every paper preset, or none.

    Without normalisation the BatchNorm modules are omitted (not replaced by ``nn.Identity``, so
    summaries and diagrams show only what runs) and every convolution gets a per-channel bias in
    place of the shift BatchNorm would have learned; under ``init=fixup`` the convolutions keep no
    bias and Fixup's scalar biases stand in, as in the paper.
    """

    BATCH = "batch"
    NONE = "none"


class Init(StrEnum):
    """How weights start, and the scalars that come with it.

    * ``kaiming``: torchvision's initialisation (He et al. 2015, arXiv:1502.01852): Kaiming-normal
      (fan_out) convolutions, BatchNorm weight 1 and bias 0.
    * ``fixup``: Zhang et al. 2019 (arXiv:1901.09321), Sec. 3: the classification layer and the
      last layer of every residual branch start at 0, the other branch layers are He-initialised
      and scaled by L^(-1/(2m-2)) (L branches of m layers); a scalar multiplier (1) ends every
      branch and scalar biases (0) sit before each convolution, activation and the linear layer.
      The paper trains it without normalisation (``norm=none``, as the ``fixup_*`` presets);
      with ``norm=batch`` the BatchNorm layers stay and undo the rescaling of the layers they follow.
    * ``skipinit``: De & Smith 2020 (arXiv:2002.10444): a learnable scalar at the end of every
      residual branch, initialised to 0, proposed to train without normalisation (``norm=none``).
    * ``rezero``: Bachlechner et al. 2020 (arXiv:2003.04887): ``x + alpha * F(x)`` with a
      learnable alpha initialised to 0, a change of the residual connection alone, with or
      without normalisation.

    In a ResNet SkipInit and ReZero build the same layers; the spec keeps the paper's name.
    Every choice but ``kaiming`` needs shortcuts: without a skip path a block starting at zero
    would pass nothing on.
    """

    KAIMING = "kaiming"
    FIXUP = "fixup"
    SKIPINIT = "skipinit"
    REZERO = "rezero"

    @property
    def scales_branches(self) -> bool:
        """True where a learnable scalar multiplies every residual branch."""
        return self is not Init.KAIMING

    @property
    def branch_scale(self) -> float:
        """The branch multiplier's starting value: 1 for Fixup (its zero sits in the last layer
        instead), 0 for SkipInit and ReZero."""
        return 1.0 if self is Init.FIXUP else 0.0


def _enum(cls: type[StrEnum], value: Any, field: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise ResvizError(f"invalid {field} {quote(value)}: choose one of {choices}") from None


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
    norm: Norm = Norm.BATCH
    init: Init = Init.KAIMING

    def __post_init__(self) -> None:
        # Accept plain strings and lists (from JSON, YAML or the CLI) and normalise them.
        object.__setattr__(self, "block", _enum(BlockKind, self.block, "block"))
        object.__setattr__(self, "stem", _enum(Stem, self.stem, "stem"))
        object.__setattr__(self, "shortcut", _enum(Shortcut, self.shortcut, "shortcut"))
        object.__setattr__(self, "stride_at", _enum(StrideAt, self.stride_at, "stride_at"))
        object.__setattr__(self, "norm", _enum(Norm, self.norm, "norm"))
        object.__setattr__(self, "init", _enum(Init, self.init, "init"))
        for field in ("layers", "widths"):
            if isinstance(getattr(self, field), (list, tuple)):  # anything else is refused by validate()
                object.__setattr__(self, field, tuple(getattr(self, field)))

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
        without shortcuts is its own twin.

        Fixup, SkipInit and ReZero start every branch at zero so that a block starts as its skip
        path; without one the network would start as a constant, so the twin of such a spec is
        He-initialised (``init=kaiming``) with the same normalisation.
        """
        if not self.has_skips:
            return self
        reset = self.init is not Init.KAIMING
        return dataclasses.replace(
            self, name=plain_name(self.name, drop_init=reset), shortcut=Shortcut.NONE, init=Init.KAIMING,
        )

    @property
    def default_input_size(self) -> tuple[int, int, int, int]:
        """One image at 224x224 for ImageNet stems (torchvision's ``_ops`` resolution), 32x32 for
        CIFAR stems (He et al. 2015, Sec. 4.2)."""
        side = 32 if self.stem is Stem.CIFAR else 224
        return (1, self.in_channels, side, side)

    # ------------------------------------------------------------------ checks
    def validate(self) -> ResNetSpec:
        """Raise :class:`ResvizError` naming the first impossible value; return self when fine.

        Counts are checked against :mod:`resviz.limits` before anything is multiplied or built,
        so a typo such as ``layers=1000000`` is refused at once instead of running for minutes.
        """
        self._check_name()
        if not isinstance(self.preact, bool):
            raise ResvizError(f"preact = {quote(self.preact)}: must be true or false")
        self._check_stages()
        for field in INT_FIELDS:
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ResvizError(f"{field} = {quote(v)}: must be a positive integer")  # not 0, 2.0, true
            high, why = (limits.MAX_CLASSES, limits.CLASSES_WHY) if field == "num_classes" else \
                (limits.MAX_CHANNELS, limits.CHANNELS_WHY)
            limits.bounded(v, field, high, why)
        if self.block is BlockKind.BASIC and (self.groups != 1 or self.width_per_group != 64):
            raise ResvizError(
                "basic blocks support only groups=1 and width_per_group=64 (as torchvision's "
                "BasicBlock); use block=bottleneck for ResNeXt or Wide ResNet"
            )
        for i in range(self.num_stages):
            self._check_channels(i)
        self._check_variant()
        return self

    def _check_variant(self) -> None:
        """Combinations of ``init`` with shortcuts and block layout that have no meaning."""
        if self.init is not Init.KAIMING and not self.has_skips:
            raise ResvizError(f"init={self.init.value} scales residual branches and needs shortcuts: with "
                              "shortcut=none every block would start at zero; use init=kaiming for a plain net")
        if self.init is Init.FIXUP and self.preact:
            raise ResvizError("init=fixup is defined for post-activation ResNets (Zhang et al. 2019, "
                              "arXiv:1901.09321): use preact=false, or init=skipinit or rezero")

    def _check_name(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ResvizError(f"name = {quote(self.name)}: must be a non-empty string")
        if len(self.name) > limits.MAX_NAME_CHARS:
            raise ResvizError(f"name = {quote(self.name)}: more than the {limits.MAX_NAME_CHARS} characters "
                              f"resviz accepts ({limits.NAME_WHY})")
        if not self.name.isprintable():
            raise ResvizError(f"name = {quote(self.name)}: must be one line of printable characters")

    def _check_stages(self) -> None:
        """Blocks per stage and widths: one each per stage, positive, and within the limits."""
        for field in ("layers", "widths"):
            if not isinstance(getattr(self, field), tuple):
                raise ResvizError(f"{field} must be a list of integers, got {quote(getattr(self, field))}")
        if not self.layers:
            raise ResvizError("layers must list at least one stage")
        limits.bounded(len(self.layers), "layers: the number of stages", limits.MAX_STAGES, limits.STAGES_WHY)
        if len(self.widths) != len(self.layers):
            raise ResvizError(
                f"widths has {len(self.widths)} entries but layers has {len(self.layers)}: "
                "give one width per stage"
            )
        for i, n in enumerate(self.layers):
            if not isinstance(n, int) or isinstance(n, bool):
                raise ResvizError(f"layers[{i}] = {quote(n)}: must be an integer")
            if n < 1:
                raise ResvizError(f"layers[{i}] = {quote(n)}: every stage needs at least 1 block")
        total = sum(self.layers)
        if total > limits.MAX_BLOCKS:
            raise ResvizError(f"layers: {total} blocks in total, more than the {limits.MAX_BLOCKS} resviz accepts "
                              f"({limits.BLOCKS_WHY})")
        for i, w in enumerate(self.widths):
            if not isinstance(w, int) or isinstance(w, bool):
                raise ResvizError(f"widths[{i}] = {quote(w)}: must be an integer")
            if w < 1:
                raise ResvizError(f"widths[{i}] = {quote(w)}: widths must be positive integers")
            limits.bounded(w, f"widths[{i}]", limits.MAX_CHANNELS, limits.CHANNELS_WHY)

    def _check_channels(self, i: int) -> None:
        """Stage ``i``'s inner and output channels: at least one, within the limit, and divisible
        into ``groups``."""
        inner = self.inner_width(i)
        if inner < 1:
            raise ResvizError(
                f"stage {i + 1}: width {self.widths[i]} x width_per_group "
                f"{self.width_per_group}/64 rounds to zero channels"
            )
        for kind, channels in (("inner", inner), ("output", self.stage_out_channels()[i])):
            if channels > limits.MAX_CHANNELS:
                raise ResvizError(f"stage {i + 1}: {channels} {kind} channels, more than the "
                                  f"{limits.MAX_CHANNELS} resviz accepts ({limits.CHANNELS_WHY})")
        if inner % self.groups:
            raise ResvizError(
                f"stage {i + 1}: inner width {inner} is not divisible by groups={self.groups}"
            )

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
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ResvizError(
                f"unknown spec field(s) {clip(', '.join(unknown))}; known: {', '.join(sorted(known))}"
            )
        missing = [f for f in ("name", "block", "layers", "widths") if f not in data]
        if missing:
            raise ResvizError(f"spec is missing required field(s): {', '.join(missing)}")
        for k in ("layers", "widths"):
            if not isinstance(data[k], (list, tuple)):
                raise ResvizError(f"{k} must be a list of integers, got {quote(data[k])}")
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
        raise ResvizError(f"{what} must be comma-separated integers, e.g. 3,4,6,3 (got {quote(text)})") from None
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
    raise ResvizError(f"{what} expects true or false, got {quote(text)}")


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
            raise ResvizError(f"{clip(key)} expects an integer, got {quote(value)}") from None
    if key == "preact":
        return key, parse_bool(value, key)
    return key, value


def plain_name(name: str, drop_init: bool = False) -> str:
    """``resnet34`` -> ``plain34``; ``preact_resnet164`` -> ``plain_preact_resnet164``;
    ``resnet56@norm=none,init=rezero`` -> ``plain56@norm=none,init=rezero``, or
    ``plain56@norm=none`` with ``drop_init`` (the twin of a variant is He-initialised,
    :meth:`ResNetSpec.plain`)."""
    base, at, overrides = name.partition("@")
    if at:
        kept = [item for item in split_overrides(overrides)
                if not (drop_init and item.partition("=")[0].strip() == "init")]
        return plain_name(base) + (f"@{','.join(kept)}" if kept else "")
    if name.startswith("resnet") and name[6:].isdigit():
        return "plain" + name[6:]
    return "plain_" + name


def split_overrides(text: str) -> list[str]:
    """``"norm=none,layers=2,2,2,init=rezero"`` -> ``["norm=none", "layers=2,2,2", "init=rezero"]``:
    commas separate ``KEY=VALUE`` items, and a part without ``=`` continues the list value before it."""
    items: list[str] = []
    for part in text.split(","):
        if "=" in part or not items:
            items.append(part)
        else:
            items[-1] += "," + part
    return items


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: ``*name`` repeats a node, and nested repeats grow a
    few hundred bytes into gigabytes ("billion laughs"). A spec never needs one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ResvizError(f"line {mark.line + 1}: YAML aliases (*name) are not accepted in a spec; "
                              "write the value out")
        return super().compose_node(parent, index)


_INT = "tag:yaml.org,2002:int"
# YAML 1.1 reads 1:20 as 80 (base 60), 010 as 8 and 0x10 as 16: in a spec only plain decimals are
# integers; anything else stays text and is refused by name where a number belongs.
_NoAliasLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in found if tag != _INT]
    for first, found in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_NoAliasLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))


def read_spec_text(path: Path) -> str:
    """A spec file's text: at most :data:`resviz.limits.MAX_SPEC_BYTES`, UTF-8 (a byte-order mark
    allowed), not empty; read in one bounded call, so a device or a huge file is never read whole."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(limits.MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise ResvizError(f"cannot read spec file {clip(path)}: {exc.strerror or one_line(exc)}") from None
    if len(raw) > limits.MAX_SPEC_BYTES:
        raise ResvizError(f"spec file {clip(path)} is larger than the {limits.MAX_SPEC_BYTES} bytes resviz "
                          "reads: a spec is a dozen fields")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ResvizError(f"spec file {clip(path)} is UTF-16 text: save it as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ResvizError(f"spec file {clip(path)} is not UTF-8 text (byte {exc.start}): save it as UTF-8") \
            from None
    if "\x00" in text:
        raise ResvizError(f"spec file {clip(path)} is not a text file")
    if not text.strip():
        raise ResvizError(f"spec file {clip(path)} is empty")
    return text


def load_spec_file(path: str | Path) -> ResNetSpec:
    """Read a spec from a ``.json``, ``.yaml`` or ``.yml`` file, with one-line errors.

    The file is bounded in size and YAML aliases are refused (:class:`_NoAliasLoader`), so no file
    costs more to read than its own bytes; errors quote a clipped part of it only.
    """
    p = Path(path)
    text = read_spec_text(p)
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader without aliases
        else:
            data = json.loads(text)
    except ResvizError as exc:
        raise ResvizError(f"cannot parse spec file {clip(p)}: {exc}") from None
    except Exception as exc:  # any parser failure is the file's fault: one line
        raise ResvizError(f"cannot parse spec file {clip(p)}: {one_line(exc)}") from None
    if not isinstance(data, dict):
        raise ResvizError(f"spec file {clip(p)} holds a {type(data).__name__}, not a mapping of field names to "
                          "values")
    if "name" not in data:
        data = {"name": p.stem, **data}
    return ResNetSpec.from_dict(data)
