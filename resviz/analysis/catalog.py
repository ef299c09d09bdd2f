"""The preset catalogue shown by ``resviz list`` and the dashboard's model picker."""

from __future__ import annotations

from typing import NamedTuple

from resviz.spec import Stem
from resviz.trace.records import shape_str
from resviz.trace.static import default_input_size
from resviz.zoo import TORCHVISION_PRESETS, get_spec, list_models


class CatalogRow(NamedTuple):
    name: str
    family: str
    depth: int
    params: int
    macs: int
    input: str


def family(name: str) -> str:
    spec = get_spec(name)
    if not spec.has_skips:
        return "plain"
    if name in TORCHVISION_PRESETS:
        return "torchvision"
    if spec.preact:
        return "pre-activation " + ("CIFAR" if spec.stem is Stem.CIFAR else "ImageNet")
    return "CIFAR (He et al. 2015)"


def catalog(include_plain: bool = False) -> list[CatalogRow]:
    """One row per preset, counted on the meta device at the preset's native input size."""
    from resviz.api import summarize

    rows = []
    for name in list_models(include_plain=include_plain):
        spec = get_spec(name)
        s = summarize(spec)
        rows.append(
            CatalogRow(name, family(name), spec.depth, s.total_params, s.total_macs,
                       shape_str(default_input_size(spec)))
        )
    return rows
