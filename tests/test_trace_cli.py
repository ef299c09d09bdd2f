"""``resviz trace`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from resviz.cli import app
from resviz.records import Trace

runner = CliRunner()


def test_trace_writes_json_and_prints_block_table(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    res = runner.invoke(app, ["trace", "resnet20", "--input", "2x3x32x32", "--seed", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "layer3.2" in res.output and "zero-pad" in res.output
    tr = Trace.from_dict(json.loads(out.read_text()))
    assert tr.seed == 3 and len(tr.blocks) == 9 and tr.input_shape == (2, 3, 32, 32)
    assert not list(tmp_path.glob(".*.tmp"))


def test_trace_csv_plain_twin(tmp_path: Path) -> None:
    out = tmp_path / "trace.csv"
    res = runner.invoke(app, ["trace", "resnet20", "--input", "2x3x32x32", "--plain", "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("kind,name,stage,index,shortcut")
    blocks = [ln for ln in lines if ln.startswith("block,")]
    assert len(blocks) == 9 and all(",none," in ln for ln in blocks)
    assert any(ln.startswith("layer,conv1,Conv2d") for ln in lines)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "2x5x32x32"], "input channels"),
        (["--dtype", "int4"], "unknown dtype"),
        (["-o", "trace.txt"], ".json or .csv"),
        (["--set", "layers=a,b"], "integers"),
    ],
)
def test_user_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    res = runner.invoke(app, ["trace", "resnet20", *args])
    assert res.exit_code == 2
    text = res.output.strip()
    assert text.startswith("error:") and message in text and "\n" not in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_absent_exit_2() -> None:
    res = runner.invoke(app, ["trace", "resnet20", "--device", "cuda"])
    assert res.exit_code == 2 and "CUDA" in res.output


def test_piped_tables_are_not_cut_to_80_columns() -> None:
    """CliRunner's stdout is not a terminal, like a pipe: the layer table keeps every column."""
    res = runner.invoke(app, ["trace", "resnet20", "--input", "2x3x32x32", "--layers"])
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.output.splitlines()) > 80
    assert "…" not in res.output


def test_a_batch_too_large_for_memory_is_refused_before_it_runs() -> None:
    """A process out of host memory is killed without a message; the CLI checks first."""
    res = runner.invoke(app, ["trace", "resnet50", "--input", "16384x3x224x224"])
    assert res.exit_code == 2 and "lower the batch to " in res.output and len(res.output.strip().splitlines()) == 1
