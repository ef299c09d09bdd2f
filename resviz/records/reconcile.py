"""Records of the counter reconciliation: resviz's counts beside fvcore's, torchinfo's and
``FlopCounterMode``'s, per layer type, each difference explained (:mod:`resviz.studies.reconcile`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resviz.records.codec import Shape
from resviz.records.display import NotebookRepr


@dataclass(frozen=True)
class ReconcileRow:
    """Counts of one layer type by each counter (``None`` where that counter gives no number)."""

    layer_type: str
    layers: int
    resviz_macs: int
    resviz_elementwise: int
    fvcore: int
    torchinfo: int
    flop_counter: int
    explanation: str


@dataclass(frozen=True)
class Reconciliation(NotebookRepr):
    model: str
    input_shape: Shape
    rows: tuple[ReconcileRow, ...]
    totals: dict[str, int]
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "rows": [r.__dict__ for r in self.rows],
            "totals": dict(self.totals),
            "versions": dict(self.versions),
        }


__all__ = ["ReconcileRow", "Reconciliation"]
