"""Named presets: torchvision's ten ResNets, the 2015 paper's CIFAR nets, pre-activation nets.

Sources of the configurations:
* torchvision ``resnet18`` ... ``resnext101_64x4d`` builders (blocks per stage, groups,
  ``width_per_group``); counts pinned in ``tests/data/torchvision_resnets.json``.
* He et al. 2015, Sec. 4.2: CIFAR-10 nets of depth 6n+2 with 16/32/64 filters and option A shortcuts
  (Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M parameters for 20 ... 1202 layers).
* He et al. 2016 (pre-activation), Table 2 and Sec. 5: CIFAR bottleneck nets of depth 9n+2 with
  64/128/256 output channels (ResNet-164: 1.7M, ResNet-1001: 10.2M parameters), and ImageNet
  pre-activation nets with torchvision's stage layout (ResNet-200: 3, 24, 36, 3 blocks).

Every preset has a plain twin (``plain34``, ``plain56``, ``plain_preact_resnet164`` ...): the
same layers without shortcuts.

Variants of the CIFAR nets train without normalisation or start every block as its skip path
(:class:`~resviz.spec.Norm`, :class:`~resviz.spec.Init`); they are listed apart
(``list_models(include_variants=True)``) so that the catalogue of paper and torchvision presets
stays what it was:

* ``fixup_resnet110``: Zhang et al. 2019 (arXiv:1901.09321): their CIFAR-10 network, ResNet-110
  without normalisation, Fixup-initialised.
* ``skipinit_resnet56``: De & Smith 2020 (arXiv:2002.10444): SkipInit replaces BatchNorm, so no
  normalisation.
* ``rezero_resnet56``: Bachlechner et al. 2020 (arXiv:2003.04887) report ReZero on a CIFAR-10
  ResNet-56; ReZero changes the residual connection only, so the preset keeps BatchNorm
  (``resnet56@norm=none,init=rezero`` drops it).
* ``resnet56_nonorm``: ResNet-56 with its BatchNorm layers removed and He's initialisation, the
  baseline the three methods fix.

Their plain twins (``plain_fixup_resnet110`` ...) are He-initialised, see
:meth:`~resviz.spec.ResNetSpec.plain`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from resviz.errors import ResvizError, quote
from resviz.reference import TORCHVISION
from resviz.spec import BlockKind, Init, Norm, ResNetSpec, Shortcut, Stem, plain_name

_IMAGENET_WIDTHS = (64, 128, 256, 512)
_CIFAR_WIDTHS = (16, 32, 64)

_TV_LAYERS = {
    18: (BlockKind.BASIC, (2, 2, 2, 2)),
    34: (BlockKind.BASIC, (3, 4, 6, 3)),
    50: (BlockKind.BOTTLENECK, (3, 4, 6, 3)),
    101: (BlockKind.BOTTLENECK, (3, 4, 23, 3)),
    152: (BlockKind.BOTTLENECK, (3, 8, 36, 3)),
    200: (BlockKind.BOTTLENECK, (3, 24, 36, 3)),
}


def _imagenet(name: str, depth: int, groups: int = 1, wpg: int = 64, preact: bool = False) -> ResNetSpec:
    block, layers = _TV_LAYERS[depth]
    return ResNetSpec(
        name=name, block=block, layers=layers, widths=_IMAGENET_WIDTHS,
        groups=groups, width_per_group=wpg, preact=preact,
    )


def _cifar(name: str, depth: int) -> ResNetSpec:
    n = (depth - 2) // 6
    return ResNetSpec(
        name=name, block=BlockKind.BASIC, layers=(n, n, n), widths=_CIFAR_WIDTHS,
        stem=Stem.CIFAR, stem_width=16, shortcut=Shortcut.A, num_classes=10,
    )


def _cifar_preact(name: str, depth: int) -> ResNetSpec:
    n = (depth - 2) // 9
    return ResNetSpec(
        name=name, block=BlockKind.BOTTLENECK, layers=(n, n, n), widths=_CIFAR_WIDTHS,
        stem=Stem.CIFAR, stem_width=16, preact=True, num_classes=10,
    )


def _build_registry() -> dict[str, ResNetSpec]:
    specs = [
        _imagenet("resnet18", 18),
        _imagenet("resnet34", 34),
        _imagenet("resnet50", 50),
        _imagenet("resnet101", 101),
        _imagenet("resnet152", 152),
        _imagenet("wide_resnet50_2", 50, wpg=128),
        _imagenet("wide_resnet101_2", 101, wpg=128),
        _imagenet("resnext50_32x4d", 50, groups=32, wpg=4),
        _imagenet("resnext101_32x8d", 101, groups=32, wpg=8),
        _imagenet("resnext101_64x4d", 101, groups=64, wpg=4),
        *(_cifar(f"resnet{d}", d) for d in (20, 32, 44, 56, 110, 1202)),
        _cifar_preact("preact_resnet164", 164),
        _cifar_preact("preact_resnet1001", 1001),
        *(_imagenet(f"preact_resnet{d}", d, preact=True) for d in (18, 34, 50, 101, 152, 200)),
    ]
    return {s.name: s.validate() for s in specs}


def _build_variants() -> dict[str, ResNetSpec]:
    specs = [
        dataclasses.replace(_cifar("fixup_resnet110", 110), norm=Norm.NONE, init=Init.FIXUP),
        dataclasses.replace(_cifar("skipinit_resnet56", 56), norm=Norm.NONE, init=Init.SKIPINIT),
        dataclasses.replace(_cifar("rezero_resnet56", 56), init=Init.REZERO),
        dataclasses.replace(_cifar("resnet56_nonorm", 56), norm=Norm.NONE),
    ]
    return {s.name: s.validate() for s in specs}


_REGISTRY = _build_registry()
_PLAIN = {plain_name(n): n for n in _REGISTRY}
_VARIANTS = _build_variants()
_VARIANT_PLAIN = {plain_name(n): n for n in _VARIANTS}

#: Presets whose state_dict, parameter count and forward function equal torchvision's builders.
TORCHVISION_PRESETS: tuple[str, ...] = tuple(TORCHVISION)


def list_models(include_plain: bool = False, include_variants: bool = False) -> list[str]:
    """Preset names in registry order (torchvision first, then CIFAR, then pre-activation), then
    their plain twins, then the normalisation and initialisation variants (and their twins)."""
    names = list(_REGISTRY)
    if include_plain:
        names += list(_PLAIN)
    if include_variants:
        names += list(_VARIANTS)
        if include_plain:
            names += list(_VARIANT_PLAIN)
    return names


def get_spec(name: str) -> ResNetSpec:
    """The preset called ``name`` (or its plain twin); unknown names suggest the closest ones."""
    key = name.strip().lower().replace("-", "_")
    for presets, twins in ((_REGISTRY, _PLAIN), (_VARIANTS, _VARIANT_PLAIN)):
        if key in presets:
            return presets[key]
        if key in twins:
            return presets[twins[key]].plain()
    candidates = [*_REGISTRY, *_PLAIN, *_VARIANTS, *_VARIANT_PLAIN]
    if len(key) > 2 * max(map(len, candidates)):  # no preset is close; matching a pasted text costs time
        raise ResvizError(f"unknown model {quote(name)}; run `resviz list` for the presets")
    prefixed = [c for c in candidates if c.startswith(key) or key.startswith(c)]
    close = list(dict.fromkeys(prefixed[:2] + difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)))[:3]
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `resviz list` for the presets"
    raise ResvizError(f"unknown model {quote(name)}{hint}")


def skip_twin(name: str) -> str | None:
    """The preset whose plain twin is ``name`` (``plain_preact_resnet164`` -> ``preact_resnet164``),
    or ``None`` when ``name`` is no plain twin."""
    key = name.strip().lower().replace("-", "_")
    return _PLAIN.get(key) or _VARIANT_PLAIN.get(key)


CUSTOM = "custom"
"""The name of a network described field by field rather than picked from the presets."""


def custom(changes: Mapping[str, Any]) -> ResNetSpec:
    """A network called ``custom``: the spec's defaults (those of ResNet-18: basic blocks, an ImageNet
    stem, shortcut B) with ``changes`` applied. ``layers`` is required; with four stages or fewer the
    widths default to the first of 64, 128, 256 and 512, beyond that they must be given."""
    layers = changes.get("layers")
    if not layers:
        raise ResvizError("a custom model needs at least --set layers=..., e.g. layers=2,2,2,2")
    if len(layers) > 4 and "widths" not in changes:
        raise ResvizError("more than 4 stages: give the widths too, e.g. --set widths=...")
    base = {"name": CUSTOM, "block": "basic", "widths": (64, 128, 256, 512)[: len(layers)]}
    return ResNetSpec.from_dict({**base, **changes})


def derive(preset: ResNetSpec, changes: Mapping[str, Any]) -> ResNetSpec:
    """``preset`` with ``changes`` applied (field names as in :meth:`ResNetSpec.from_dict`), validated.

    A result equal to the preset or to its plain twin is that preset, under its own name; anything
    else is renamed ``<preset>-custom`` (unless ``changes`` names it), so that the notes comparing
    counts with torchvision and the papers are never attached to a different network.
    """
    spec = ResNetSpec.from_dict({**preset.to_dict(), **changes})
    if "name" in changes:
        return spec
    for known in (preset, preset.plain()):
        if spec == dataclasses.replace(known, name=preset.name):
            return known
    return dataclasses.replace(spec, name=f"{preset.name}-custom")
