"""The record of one science study as the surfaces run it: which study, how to run it again, what
it measured.

A :class:`StudyResult` wraps the kind-specific records of :mod:`resviz.records.signal` and
:mod:`resviz.records.paths`:

* ``signal``  (Brock, De, Smith 2021, arXiv:2101.08692): one :class:`SignalStudy` for every model;
* ``shatter`` (Balduzzi et al. 2017, arXiv:1702.08591): one :class:`ShatterStudy` for every model;
* ``paths``   (Veit et al. 2016, arXiv:1605.06431, Sec. 5): one :class:`PathsStudy` per model;
* ``lesion``  (Veit et al. 2016, Sec. 4): one :class:`LesionStudy` per model.

``settings`` holds, as text, everything needed to run the study again (the command line under
``command``); ``notes`` say where the run differs from what was asked (a model without a plain
twin, a twin left out). JSON: ``{"kind": "resviz.study", "schema": 1, "study": "signal",
"settings": {...}, "records": [<kind-specific record dicts>], "notes": [...]}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from resviz.records.codec import expect_kind, stamped
from resviz.records.paths import LesionStudy, PathsStudy
from resviz.records.signal import ShatterStudy, SignalStudy

STUDY_KIND = "resviz.study"

StudyRecord = SignalStudy | ShatterStudy | PathsStudy | LesionStudy


class StudyKind(StrEnum):
    """The science studies resviz runs (one paper each, see the module docstring)."""

    SIGNAL = "signal"
    PATHS = "paths"
    SHATTER = "shatter"
    LESION = "lesion"


#: The record class each study kind produces.
RECORD_TYPES: dict[StudyKind, type[Any]] = {
    StudyKind.SIGNAL: SignalStudy, StudyKind.SHATTER: ShatterStudy,
    StudyKind.PATHS: PathsStudy, StudyKind.LESION: LesionStudy,
}


@dataclass(frozen=True)
class StudyResult:
    """One study's records with the settings that reproduce them.

    ``records`` holds one record for signal and shatter (every model inside it) and one per model
    for paths and lesion, each of the type :data:`RECORD_TYPES` names for ``kind``.
    """

    kind: StudyKind
    settings: dict[str, str]
    records: tuple[StudyRecord, ...]
    notes: tuple[str, ...] = ()
    models: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        kind = StudyKind(self.kind)
        object.__setattr__(self, "kind", kind)
        want = RECORD_TYPES[kind]
        wrong = [type(r).__name__ for r in self.records if not isinstance(r, want)]
        if wrong:
            raise ValueError(f"a {kind} study holds {want.__name__} records, got {wrong[0]}")

    @property
    def command(self) -> str:
        """The command line that runs this study again (empty when a module was given)."""
        return self.settings.get("command", "")

    def to_dict(self) -> dict[str, Any]:
        return stamped(STUDY_KIND, {
            "study": str(self.kind), "settings": dict(self.settings), "models": list(self.models),
            "records": [r.to_dict() for r in self.records], "notes": list(self.notes),
        })

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyResult:
        expect_kind(data, STUDY_KIND)
        kind = StudyKind(data["study"])
        make = RECORD_TYPES[kind].from_dict
        return cls(
            kind=kind,
            settings={str(k): str(v) for k, v in data.get("settings", {}).items()},
            records=tuple(make(r) for r in data.get("records", ())),
            notes=tuple(str(n) for n in data.get("notes", ())),
            models=tuple(str(m) for m in data.get("models", ())),
        )

    @classmethod
    def from_json(cls, text: str) -> StudyResult:
        return cls.from_dict(json.loads(text))


__all__ = ["RECORD_TYPES", "STUDY_KIND", "StudyKind", "StudyRecord", "StudyResult"]
