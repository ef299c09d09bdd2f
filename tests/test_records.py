"""Records: the data contract every surface reads.

Files written by an earlier version must keep reading (formats change additively only), closed sets
are enums, and what the dashboard shows comes from typed fields that exist.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from resviz.records import (
    SCHEMA_VERSION,
    BlockType,
    Branch,
    Comparison,
    MonitorSeries,
    ShortcutKind,
    Summary,
    Trace,
    TrainingRun,
    TrainingStatus,
)

V0 = Path(__file__).parent / "data" / "v0"


def _load(name: str) -> dict:
    return json.loads((V0 / name).read_text())


def _assert_contains(new: object, old: object, where: str = "") -> None:
    """``new`` holds everything ``old`` holds, recursively (it may add keys: formats grow additively)."""
    if isinstance(old, dict):
        assert isinstance(new, dict), where
        for key, value in old.items():
            assert key in new, f"{where}.{key} is no longer written"
            _assert_contains(new[key], value, f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), where
        for i, (n, o) in enumerate(zip(new, old, strict=True)):
            _assert_contains(n, o, f"{where}[{i}]")
    else:
        assert new == old, f"{where}: {new!r} != {old!r}"


def test_a_summary_written_by_the_first_version_reads_back() -> None:
    data = _load("summary-resnet20.json")
    s = Summary.from_dict(data)
    assert s.model == "resnet20" and round(s.total_params / 1e6, 2) == 0.27  # He et al. 2015, Table 6
    assert {b.shortcut for b in s.blocks} == {ShortcutKind.IDENTITY, ShortcutKind.ZERO_PAD}
    assert all(b.kind is BlockType.BASIC for b in s.blocks)
    assert {lr.branch for lr in s.layers} >= {Branch.MAIN, Branch.JOIN, Branch.OUTSIDE}
    again = s.to_dict()
    assert again["schema"] == SCHEMA_VERSION and again["kind"] == "resviz.summary"
    _assert_contains(json.loads(json.dumps(again)), data)  # additive only: every old key, with its value


def test_a_trace_written_by_the_first_version_reads_back() -> None:
    data = _load("trace-resnet20.json")
    tr = Trace.from_dict(data)
    assert len(tr.blocks) == 9 and tr.blocks[0].shortcut is ShortcutKind.IDENTITY
    for b in tr.blocks:
        assert b.grad_main is not None and b.grad_skip is not None and b.grad_total is not None
    again = tr.to_dict()
    assert again["schema"] == SCHEMA_VERSION
    _assert_contains(json.loads(json.dumps(again)), data)
    assert Trace.from_dict(json.loads(json.dumps(again))) == tr


def test_a_monitor_series_written_by_the_first_version_reads_back() -> None:
    data = _load("monitor-resnet20.json")
    series = MonitorSeries.from_dict(data)
    assert series.steps == (0, 2) and len(series.loss_values) == 3
    _assert_contains(json.loads(json.dumps(series.to_dict())), data)


def test_a_comparison_written_by_the_first_version_reads_back() -> None:
    data = _load("comparison-resnet20-plain20.json")
    c = Comparison.from_dict(data)
    assert [m.name for m in c.models] == ["resnet20", "plain20"]
    plain = c.model("plain20")
    assert not plain.has_skips and all(b.ratio is None for b in plain.blocks)
    assert all(b.shortcut is ShortcutKind.NONE for b in plain.blocks)
    run = plain.training
    assert run is not None and run.status is TrainingStatus.OK and run.steps_done == 2
    assert run.final_loss == run.losses[-1] and run.series is not None
    again = c.to_dict()
    assert again["schema"] == SCHEMA_VERSION and again["version"] == data["version"]
    _assert_contains(json.loads(json.dumps(again, allow_nan=False)), data)  # every old key, with its value
    assert Comparison.from_dict(json.loads(c.to_json())) == c


def test_a_file_that_is_no_comparison_is_refused() -> None:
    with pytest.raises(ValueError, match="not a resviz comparison"):
        Comparison.from_dict(_load("trace-resnet20.json"))


def test_enums_accept_their_strings_and_refuse_others() -> None:
    run = TrainingRun("m", "nan", 1, (math.nan,), 0.1)  # type: ignore[arg-type]
    assert run.status is TrainingStatus.NAN and run.final_loss is not None and math.isnan(run.final_loss)
    assert TrainingRun("m", "ok", 0, (), 0.0).final_loss is None  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TrainingRun("m", "exploded", 1, (1.0,), 0.1)  # type: ignore[arg-type]
    assert BlockType.of(bottleneck=True, preact=True) is BlockType.PREACT_BOTTLENECK
    assert BlockType.PREACT_BASIC.preact and not BlockType.BASIC.preact
    assert BlockType.BOTTLENECK.bottleneck and not BlockType.PREACT_BASIC.bottleneck
