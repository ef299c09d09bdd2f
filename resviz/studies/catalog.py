"""The preset catalogue shown by ``resviz list`` and the dashboard's model picker.

Counting every preset and twin on the meta device takes seconds (the 1001- and 1202-layer nets
above all; bench/RESULTS.md), too slow for a listing. The counts are therefore
stored in ``resviz/data/catalog.json``, written by ``python -m resviz.studies.catalog`` and checked
against a fresh count by the test suite; a preset missing from the file is counted on the spot.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from resviz.measure.static import analyze_spec
from resviz.records import shape_str
from resviz.spec import Stem
from resviz.zoo import TORCHVISION_PRESETS, get_spec, list_models

CATALOG_FILE = "catalog.json"


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


def count(name: str) -> dict[str, Any]:
    """Parameters and MACs of one preset at its native input size, on the meta device."""
    spec = get_spec(name)
    s = analyze_spec(spec, spec.default_input_size)
    return {"params": s.total_params, "macs": s.total_macs, "input": shape_str(spec.default_input_size)}


@cache
def _stored() -> dict[str, dict[str, Any]]:
    try:
        text = resources.files("resviz.data").joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


def catalog(include_plain: bool = False) -> list[CatalogRow]:
    """One row per preset (and plain twin when asked), in registry order."""
    rows = []
    for name in list_models(include_plain=include_plain):
        entry = _stored().get(name) or count(name)
        spec = get_spec(name)
        rows.append(CatalogRow(name, family(name), spec.depth, entry["params"], entry["macs"], entry["input"]))
    return rows


def write_catalog(path: Path) -> None:
    data = {name: count(name) for name in list_models(include_plain=True)}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "data" / CATALOG_FILE
    write_catalog(target)
    print(f"wrote {target}")
