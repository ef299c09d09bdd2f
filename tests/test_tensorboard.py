"""``mon.to_tensorboard(writer)``: a monitored run read back with TensorBoard's own event reader.

Every tag, step and value in the event files equals the series' number (TensorBoard stores scalars
as float32, so values are compared at float32 precision).
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import resviz
from resviz.api import monitor as api_monitor
from resviz.errors import ResvizError
from resviz.records import MonitorSeries

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from resviz.integrations.scalars import BLOCK_FIELDS, block_tag, layer_tag, scalars

ROOT = Path(__file__).resolve().parent.parent
STEPS, EVERY = 5, 2


@pytest.fixture(scope="module")
def run(monitored_resnet20: Any) -> tuple[resviz.api.Monitor, MonitorSeries]:
    """Five SGD steps of ResNet-20 on random data, a snapshot every second step."""
    series = monitored_resnet20.series
    assert series.every == EVERY and series.loss_steps == tuple(range(STEPS))
    return monitored_resnet20, series


def _read(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return acc


def _points(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def _f32(v: float) -> float:
    return float(torch.tensor(v, dtype=torch.float32))


def test_every_block_parameter_and_loss_tag_holds_the_series_numbers(run: tuple, tmp_path: Path) -> None:
    mon, series = run
    assert series.steps == (0, 2, 4)
    with SummaryWriter(log_dir=str(tmp_path)) as writer:
        mon.to_tensorboard(writer)
    acc = _read(tmp_path)
    tags = set(acc.Tags()["scalars"])
    expected = {p.tag for p in scalars(series)}
    assert tags == expected
    first, last = series.block_names[0], series.block_names[-1]
    for name in (first, last):
        for field in BLOCK_FIELDS:
            assert f"resviz/{name}/{field}" in tags
    assert "resviz/param/conv1.weight/grad_norm" in tags and "resviz/param/fc.bias/weight_norm" in tags
    for snap_i, snap in enumerate(series.snapshots):
        for block in snap.blocks:
            for field in ("grad_main", "grad_skip", "grad_total", "main_rms", "skip_rms"):
                assert _points(acc, block_tag(block, field))[snap_i] == (snap.step, _f32(getattr(block, field)))
            assert _points(acc, block_tag(block, "skip_share"))[snap_i] == (snap.step, _f32(block.skip_share))
        for p in snap.params:
            assert _points(acc, f"resviz/param/{p.name}/grad_norm")[snap_i] == (snap.step, _f32(p.grad_norm))
            assert _points(acc, f"resviz/param/{p.name}/weight_norm")[snap_i] == (snap.step, _f32(p.weight_norm))
    grid = series.matrix("grad_total")
    assert [v for _, v in _points(acc, f"resviz/{first}/grad_total")] == [_f32(v) for v in grid[0]]
    assert _points(acc, "resviz/loss") == [(s, _f32(v)) for s, v in zip(series.loss_steps, series.loss_values,
                                                                         strict=True)]
    assert [s for s, _ in _points(acc, "resviz/loss")] == list(range(STEPS))


def test_every_layer_histogram_holds_the_series_counts(run: tuple, tmp_path: Path) -> None:
    """One histogram per layer and snapshot, read back with TensorBoard's reader: the bucket
    counts are the series' fixed-bin counts, the extremes the layer's own."""
    mon, series = run
    with SummaryWriter(log_dir=str(tmp_path)) as writer:
        mon.to_tensorboard(writer)
    acc = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    acc.Reload()
    layers = series.snapshots[0].layers
    assert len(layers) == 70 and set(acc.Tags()["histograms"]) == {layer_tag(lr) for lr in layers}
    for snap_i, snap in enumerate(series.snapshots):
        for lr in snap.layers:
            event = acc.Histograms(layer_tag(lr))[snap_i]
            assert event.step == snap.step
            h = event.histogram_value
            assert list(h.bucket) == [float(c) for c in lr.hist_counts]
            assert list(h.bucket_limit) == pytest.approx(lr.hist_edges[1:])
            assert (h.min, h.max, h.num) == (pytest.approx(lr.min), pytest.approx(lr.max), sum(lr.hist_counts))


def test_a_log_folder_is_written_and_closed(run: tuple, tmp_path: Path) -> None:
    mon, series = run
    mon.to_tensorboard(tmp_path / "logs")
    acc = _read(tmp_path / "logs")
    assert len(acc.Scalars("resviz/loss")) == STEPS
    assert len(acc.Scalars(f"resviz/{series.block_names[-1]}/grad_skip")) == len(series.steps)


def test_a_writer_that_is_not_one_is_refused_in_one_line(run: tuple) -> None:
    mon, _ = run
    with pytest.raises(ResvizError, match=r"^to_tensorboard needs a SummaryWriter or a log folder, got int$"):
        mon.to_tensorboard(3)


def test_names_tensorboard_refuses_become_underscores() -> None:
    from resviz.records import BlockStats

    block = BlockStats("stage 1<b>", "s", 0, "identity", 1.0, 1.0, None, None, None, call=2)
    assert block_tag(block, "grad_main") == "resviz/stage_1_b_.call2/grad_main"


def test_the_monitor_takes_the_api_monitors_arguments() -> None:
    """``resviz.monitor`` adds the writers to the api's monitor and nothing else."""
    assert inspect.signature(resviz.monitor).parameters == inspect.signature(api_monitor).parameters
    assert issubclass(resviz.integrations.monitor.Monitor, resviz.api.Monitor)


def test_without_tensorboard_the_writer_is_refused_in_one_line_naming_the_extra() -> None:
    code = (
        "import sys; sys.modules['tensorboard'] = None\n"
        "import torch, resviz\n"
        "from resviz.errors import ResvizError\n"
        "model = resviz.build_model('resnet20', device='cpu')\n"
        "with resviz.monitor(model, every=1) as mon:\n"
        "    model(torch.randn(2, 3, 32, 32)).sum().backward()\n"
        "try:\n"
        "    mon.to_tensorboard('logs')\n"
        "except ResvizError as exc:\n"
        "    print(exc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == "TensorBoard logging needs tensorboard: pip install 'resviz[tensorboard]'"
