"""How records become JSON and come back: plain values only, non-finite floats as strings.

Every record file starts with ``{"kind": ..., "schema": SCHEMA_VERSION}``. The formats change
additively only: a later version may add fields, never rename or remove one, so a file written by
any earlier version still reads (unknown keys are ignored, missing ones take their defaults).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

Shape = tuple[int, ...]

SCHEMA_VERSION = 1
"""The version written into every record file's ``schema`` field (bumped on additions)."""

_NONFINITE = ("nan", "inf", "-inf")


def stamped(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A record file's dict: ``kind`` and :data:`SCHEMA_VERSION` first, then ``body``."""
    return {"kind": kind, "schema": SCHEMA_VERSION, **body}


def expect_kind(data: dict[str, Any], kind: str, what: str | None = None) -> None:
    """A ``ValueError`` unless ``data`` was written as a ``kind`` record (its ``kind`` field);
    ``what`` names the record in the message (default: the kind itself)."""
    if data.get("kind") != kind:
        raise ValueError(f"not a {what or kind + ' record'} (kind {data.get('kind')!r})")


def json_safe(value: Any) -> Any:
    """Dataclasses, tuples and floats -> dicts, lists and JSON-safe values, recursively.

    JSON has no NaN or infinity: they become the strings ``"nan"``, ``"inf"`` and ``"-inf"``,
    which :func:`build` reads back into the float fields of a record.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _decode(value: Any, floats: bool) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v, floats) for v in value)
    if floats and isinstance(value, str) and value in _NONFINITE:
        return float(value)
    return value


def build(kind: type[Any], row: dict[str, Any]) -> Any:
    """A record of type ``kind`` from its :func:`json_safe` dict: lists become tuples, and
    ``"nan"``/``"inf"`` become floats again in fields typed as floats only (a layer may be named
    ``nan``). Keys a newer or older version may add are ignored."""
    types = {f.name: str(f.type) for f in dataclasses.fields(kind)}
    return kind(**{k: _decode(v, "float" in types[k]) for k, v in row.items() if k in types})


def decode_float(value: Any) -> Any:
    """A float (or ``None``) written by :func:`json_safe`."""
    return _decode(value, True)


def shape_str(shape: Shape) -> str:
    """``(1, 64, 112, 112)`` -> ``1x64x112x112``."""
    return "x".join(str(d) for d in shape)


class Called:
    """Mixin of the records of a module or block that may run several times in one forward (its
    ``name`` and the ``call`` number, 1 for the first)."""

    name: str
    call: int

    @property
    def label(self) -> str:
        """``conv`` for a module's first call, ``conv (call 2)`` for its second: how rows of a
        module that runs several times in one forward are told apart."""
        return self.name if self.call <= 1 else f"{self.name} (call {self.call})"


def reuse_notes(rows: Any) -> tuple[str, ...]:
    """One note per module or block with weights that ``rows`` (records with ``name``, ``call`` and
    perhaps ``params``) show running more than once in one forward, so a reader never takes its
    rows for one call. Parameter-free modules used twice (one ReLU object called after each
    convolution, as torchvision's blocks do) get their rows per call without a note."""
    calls: dict[str, int] = {}
    weighted: set[str] = set()
    for r in rows:
        calls[r.name] = max(calls.get(r.name, 0), r.call)
        if getattr(r, "params", 1):
            weighted.add(r.name)
    return tuple(
        f"{name} runs {n} times in one forward (shared weights): one row per call, its parameters "
        f"counted once"
        for name, n in calls.items() if n > 1 and name in weighted
    )
