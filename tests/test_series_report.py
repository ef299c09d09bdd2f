"""``resviz report-series``: the report of one monitored run, from the series file the monitor saves.

The page is self-contained, escapes the model's name and shows the series' own numbers (the
heatmaps' ``customdata``, the curves, the tables at four significant digits). Every input the
report cannot use is refused with one ``error:`` line, exit code 2, and no file left behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import resviz
from resviz import limits
from resviz.cli import app
from resviz.errors import ResvizError
from resviz.records import MonitorSeries
from resviz.render.format import num

pytest.importorskip("plotly")

STEPS, EVERY = 5, 2
HOSTILE = '<script>alert("x")</script> & net'


@pytest.fixture(scope="module")
def series_data(monitored_resnet20: Any) -> dict[str, Any]:
    """What ``resviz.save_series`` writes for five SGD steps of ResNet-20, a snapshot every second step."""
    data: dict[str, Any] = monitored_resnet20.to_dict()
    assert data["every"] == EVERY and data["loss_steps"] == list(range(STEPS))
    return data


def _write(folder: Path, data: object, name: str = "series.json") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["report-series", *args])


def _figure(page: str, fig_id: str) -> list[dict[str, Any]]:
    """The traces Plotly draws in the div ``fig_id``: the JSON its ``newPlot`` call is given."""
    at = page.index(f'"{fig_id}",', page.index(f'id="{fig_id}"')) + len(fig_id) + 3
    traces, _ = json.JSONDecoder().raw_decode(page, at + len(page[at:]) - len(page[at:].lstrip()))
    return list(traces)


def test_the_page_is_self_contained_escaped_and_shows_the_series_numbers(
    series_data: dict[str, Any], tmp_path: Path,
) -> None:
    data = {**series_data, "model": HOSTILE}
    series = MonitorSeries.from_dict(data)
    out = tmp_path / "run.html"
    res = run(str(_write(tmp_path, data)), "-o", str(out))
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<script[^>]*\bsrc=", page)  # Plotly inlined: opens offline
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; net" in page
    assert HOSTILE not in page and "<script>alert" not in page
    (grad,) = _figure(page, "fig-heat-grad-total")
    assert grad["customdata"] == series.matrix("grad_total") and grad["x"] == list(series.steps)
    assert grad["y"] == list(series.block_names)
    (share,) = _figure(page, "fig-heat-skip-share")
    assert share["customdata"] == [[s.blocks[i].skip_share for s in series.snapshots] for i in range(9)]
    (ratio,) = _figure(page, "fig-heat-ratio")
    assert ratio["customdata"] == [[s.blocks[i].grad_ratio for s in series.snapshots] for i in range(9)]
    (loss,) = _figure(page, "fig-loss")
    assert loss["x"] == list(series.loss_steps) == list(range(STEPS)) and loss["y"] == list(series.loss_values)
    first, last = _figure(page, "fig-end-blocks")
    grid = series.matrix("grad_total")
    assert (first["customdata"], last["customdata"]) == (grid[0], grid[-1])
    for snap in series.snapshots:
        row = f"<td>{snap.step}</td><td>{num(snap.loss)}</td><td>{num(snap.blocks[0].grad_total)}</td>"
        assert row + f"<td>{num(snap.blocks[-1].grad_total)}</td>" in page
    for b in series.snapshots[-1].blocks:
        assert f"<td>{num(b.grad_main)}</td><td>{num(b.grad_skip)}</td><td>{num(b.grad_total)}</td>" in page
    assert f"<td>every</td><td>{EVERY} (a snapshot every {EVERY} training steps)</td>" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.html", "series.json"]  # no sidecar


def test_markdown_and_json_reports(series_data: dict[str, Any], tmp_path: Path) -> None:
    path = _write(tmp_path, {**series_data, "model": "net](javascript:x)"})
    assert run(str(path), "-o", str(tmp_path / "run.md")).exit_code == 0
    text = (tmp_path / "run.md").read_text()
    assert text.startswith("# Training run: net\\](javascript:x)")
    series = MonitorSeries.from_dict(series_data)
    assert f"| {series.steps[-1]} | {num(series.snapshots[-1].loss)} |" in text
    assert run(str(path), "-o", str(tmp_path / "run.json")).exit_code == 0
    assert json.loads((tmp_path / "run.json").read_text())["snapshots"] == series_data["snapshots"]


def test_the_python_surface_saves_loads_and_reports(series_data: dict[str, Any], tmp_path: Path) -> None:
    series = MonitorSeries.from_dict(series_data)
    resviz.save_series(series, tmp_path / "s.json")
    assert resviz.load_series(tmp_path / "s.json") == series
    resviz.write_series_report(series, tmp_path / "r.md")
    assert (tmp_path / "r.md").read_text().startswith("# Training run: resnet20")
    one = MonitorSeries.from_dict({**series_data, "snapshots": series_data["snapshots"][:1]})
    with pytest.raises(ResvizError, match="one snapshot"):
        resviz.write_series_report(one, tmp_path / "one.html")
    assert not (tmp_path / "one.html").exists()


def _nan_block(data: dict[str, Any]) -> dict[str, Any]:
    snaps = json.loads(json.dumps(data["snapshots"]))
    snaps[1]["blocks"][3]["grad_total"] = "nan"  # how the codec writes a NaN
    return {**data, "snapshots": snaps}


def _nan_loss(data: dict[str, Any]) -> str:
    return json.dumps({**data, "loss_values": [*data["loss_values"][:-1], float("nan")]})  # a bare NaN literal


BAD: dict[str, tuple[Any, str]] = {
    "not_json": ("{this is not json", "is not JSON: "),
    "a_trace": (lambda d: {**d, "kind": "resviz.trace"}, "is not a resviz monitor series (kind 'resviz.trace'): "
                "save one with resviz.save_series(mon.series, path)"),
    "no_kind": (lambda d: {k: v for k, v in d.items() if k != "kind"}, "is not a resviz monitor series (kind None)"),
    "a_list": ("[1, 2]", "is not a resviz monitor series (a JSON list)"),
    "empty_file": ("", "is empty"),
    "empty_series": (lambda d: {**d, "snapshots": [], "loss_steps": [], "loss_values": [], "steps": []},
                     "the series holds no snapshots"),
    "one_step": (lambda d: {**d, "snapshots": d["snapshots"][:1]},
                 "the series holds one snapshot (step 0): a report over steps needs two or more"),
    "nan_block": (_nan_block, "grad_total of block layer2.0 at step 2 is NaN: the report draws finite numbers only"),
    "nan_loss": (_nan_loss, "the loss at step 4 is NaN: the report draws finite numbers only"),
    "no_model": (lambda d: {k: v for k, v in d.items() if k != "model"}, "lacks the field 'model'"),
    "text_for_a_number": (lambda d: {**d, "snapshots": [{**d["snapshots"][0], "blocks": [
        {**d["snapshots"][0]["blocks"][0], "main_rms": "big"}]}, *d["snapshots"][1:]]},
        "main_rms of block layer1.0 at step 0 is 'big', not a number"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_series_is_refused_in_one_line_with_no_file(
    series_data: dict[str, Any], tmp_path: Path, case: str,
) -> None:
    make, message = BAD[case]
    path = _write(tmp_path, make(series_data) if callable(make) else make)
    out = tmp_path / "run.html"
    res = run(str(path), "-o", str(out))
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), repr(res.stderr)
    assert message in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series.json"]  # no report, no temporary file


def test_a_missing_file_a_folder_and_the_input_as_output_are_refused(series_data: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    res = run(str(tmp_path / "none.json"), "-o", str(tmp_path / "r.html"))
    assert res.exit_code == 2 and res.stderr == f"error: cannot read series file {tmp_path / 'none.json'}: not found\n"
    res = run(str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert res.exit_code == 2 and res.stderr.endswith(": a folder\n")
    path = _write(tmp_path, series_data)
    res = run(str(path), "-o", str(path))
    assert res.exit_code == 2 and res.stderr == f"error: cannot write {path}: it is the series file being read\n"
    assert json.loads(path.read_text()) == series_data


def test_a_series_file_over_the_bound_is_not_read(series_data: dict[str, Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, series_data)
    monkeypatch.setattr(limits, "MAX_SERIES_BYTES", 1000)
    res = run(str(path), "-o", str(tmp_path / "r.html"))
    size = path.stat().st_size
    assert res.exit_code == 2
    assert res.stderr == f"error: series file {path} has {size} bytes, more than the 1000 resviz reads\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series.json"]


def test_the_output_is_checked_before_the_series_is_read(tmp_path: Path) -> None:
    """A bad output path is named even when the series is bad too: nothing is read in vain."""
    res = run(str(_write(tmp_path, "not json")), "-o", str(tmp_path / "no" / "r.html"))
    assert res.exit_code == 2 and "folder" in res.stderr and "does not exist" in res.stderr
    res = run(str(tmp_path / "series.json"), "-o", str(tmp_path / "r.pdf"))
    assert res.exit_code == 2 and "cannot tell the report format" in res.stderr
