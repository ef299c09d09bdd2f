"""The data contract: frozen records of what was measured, and their JSON codec.

Plain data only (numbers, strings, tuples, string enums), never a tensor or a module, so records
can be cached, written to JSON, read back by any later version and drawn by the renderers. This
package imports nothing else from resviz.
"""

from __future__ import annotations

from resviz.records.codec import (
    SCHEMA_VERSION,
    Called,
    Shape,
    build,
    decode_float,
    json_safe,
    reuse_notes,
    shape_str,
)
from resviz.records.comparison import (
    COMPARISON_KIND,
    BlockFlow,
    Comparison,
    DataInfo,
    HeldOut,
    LayerStd,
    ModelResult,
    Recipe,
    SeedRun,
    Settings,
    Spread,
    StageFlow,
    TrainingRun,
)
from resviz.records.enums import BlockType, Branch, DataKind, ShortcutKind, TrainingStatus
from resviz.records.reconcile import ReconcileRow, Reconciliation
from resviz.records.study import STUDY_KIND, StudyKind, StudyResult
from resviz.records.summary import ROOT_BLOCK, SMALL_INPUT_NOTE, BlockRecord, LayerRecord, StageRecord, Summary
from resviz.records.trace import BlockStats, LayerStats, MonitorSeries, ParamStats, StepStats, Trace

__all__ = [
    "COMPARISON_KIND",
    "ROOT_BLOCK",
    "SCHEMA_VERSION",
    "SMALL_INPUT_NOTE",
    "STUDY_KIND",
    "BlockFlow",
    "BlockRecord",
    "BlockStats",
    "BlockType",
    "Branch",
    "Called",
    "Comparison",
    "DataInfo",
    "DataKind",
    "HeldOut",
    "LayerRecord",
    "LayerStats",
    "LayerStd",
    "ModelResult",
    "MonitorSeries",
    "ParamStats",
    "Recipe",
    "ReconcileRow",
    "Reconciliation",
    "SeedRun",
    "Settings",
    "Shape",
    "ShortcutKind",
    "Spread",
    "StageFlow",
    "StageRecord",
    "StepStats",
    "StudyKind",
    "StudyResult",
    "Summary",
    "Trace",
    "TrainingRun",
    "TrainingStatus",
    "build",
    "decode_float",
    "json_safe",
    "reuse_notes",
    "shape_str",
]
