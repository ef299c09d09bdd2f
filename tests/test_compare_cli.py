"""``resviz compare``: files by suffix, the JSON sidecar, one-line errors with exit code 2."""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resviz.cli import app
from resviz.studies import training

SMALL = ["--batch", "4", "--input", "3x8x8", "--device", "cpu", "-q"]


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["compare", *args])


def test_html_report_with_json_sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report.html"
    args = ["resnet20", "plain20", "--steps", "2", *SMALL, "-o", str(out)]
    monkeypatch.setattr(sys, "argv", ["resviz", "compare", *args])  # what a shell would have passed
    res = run(*args)
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "report.json").read_text())
    assert [m["name"] for m in data["models"]] == ["resnet20", "plain20"]
    assert data["settings"]["steps_done"] == 2
    assert data["settings"]["command"] == "resviz compare " + shlex.join(args)
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "gradient first block / last block" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]


@pytest.mark.parametrize("suffix", [".md", ".json"])
def test_markdown_and_json_outputs(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"r{suffix}"
    quiet = SMALL if suffix == ".md" else [a for a in SMALL if a != "-q"]  # the progress bar runs too
    res = run("resnet20", "plain20", "--steps", "1", *quiet, "-o", str(out))
    assert res.exit_code == 0, res.output
    text = out.read_text()
    if suffix == ".json":
        assert json.loads(text)["kind"] == "resviz.comparison"
    else:
        assert text.startswith("# Gradient flow: resnet20 vs plain20")
        assert (tmp_path / "r.json").is_file()


def _classes(root: Path, names: list[str]) -> None:
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(3):
            arr = np.full((10, 10, 3), 40 + 150 * k + i, dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")


def test_image_folder_with_a_corrupt_file(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _classes(root, ["a", "b"])
    (root / "b" / "bad.jpg").write_bytes(b"not an image")
    out = tmp_path / "r.md"
    res = run("resnet20", "plain20", "--steps", "1", *SMALL, "--data", str(root), "-o", str(out))
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "skipped 1 corrupt or unreadable image(s)" in text and "bad.jpg" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resnet20"], "at least two models, got 1"),
        (["resnet20", "plain20", "--input", "3x-4x4"], "below 1"),
        (["resnet20", "plain20", "--input", "three"], "malformed input size"),
        (["resnet20", "plain20", "--steps", "-3"], "steps must be 0 or more"),
        (["resnet20", "plain20", "--batch", "0"], "batch size must be at least 1"),
        (["resnet20", "nosuch"], "unknown model"),
        (["resnet20", "plain20", "--data", "EMPTY"], "has no images"),
        (["resnet20", "plain20", "--data", "ONECLASS"], "has one class"),
        (["resnet20", "plain20", "--data", "MISSING"], "does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_no_file(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    _classes(tmp_path / "one", ["only"])
    subs = {"EMPTY": str(tmp_path / "empty"), "ONECLASS": str(tmp_path / "one"), "MISSING": str(tmp_path / "no")}
    args = [subs.get(a, a) for a in args]
    out = tmp_path / "r.html"
    res = run(*args, "--device", "cpu", "-q", "-o", str(out))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    assert not out.exists() and not (tmp_path / "r.json").exists()


def test_bad_output_suffix_or_folder(tmp_path: Path) -> None:
    res = run("resnet20", "plain20", "-q", "-o", str(tmp_path / "r.pdf"))
    assert res.exit_code == 2 and "use .html, .md or .json" in res.output
    res = run("resnet20", "plain20", "-q", "-o", str(tmp_path / "nofolder" / "r.html"))
    assert res.exit_code == 2 and "does not exist" in res.output


@pytest.mark.parametrize("folder", ["d.html", "d.json"])
def test_an_output_that_is_a_folder_fails_before_the_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str,
) -> None:
    """The report (d.html) or its sidecar (d.json) being a folder is caught before any training."""
    from resviz import api

    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("compare() ran although the output cannot be written")

    monkeypatch.setattr(api, "compare", never)
    (tmp_path / folder).mkdir()
    res = run("resnet20", "plain20", "--steps", "1000", *SMALL, "-o", str(tmp_path / "d.html"))
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [f"error: cannot write {tmp_path / folder}: it is a folder"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]
    assert not any((tmp_path / folder).iterdir())


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, which refuses new files")
def test_an_unwritable_folder_fails_before_the_comparison() -> None:
    res = run("resnet20", "plain20", "--steps", "1000", *SMALL, "-o", "/proc/r.html")
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: cannot write /proc/r.html: folder /proc is not writable")


@pytest.mark.parametrize("args", [["resnet20"], ["resnet20", "plain20", "--batch", "0"]])
def test_argument_errors_with_the_progress_bar_print_one_line(tmp_path: Path, args: list[str]) -> None:
    """Without -q the bar starts only once the comparison runs, so an argument error stands alone."""
    res = run(*args, "--device", "cpu", "-o", str(tmp_path / "r.json"))
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), repr(res.stderr)
    assert res.stdout == ""


def test_nan_model_is_marked_and_others_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = training.sgd_step

    def poisoned(model: Any, *args: Any) -> float:
        value = real(model, *args)
        return math.nan if model.spec.name == "plain20" else value

    monkeypatch.setattr(training, "sgd_step", poisoned)
    out = tmp_path / "r.md"
    res = run("resnet20", "plain20", "--steps", "3", *SMALL, "-o", str(out))
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    status = {m["name"]: (m["status"], m["training"]["steps_done"]) for m in data["models"]}
    assert status == {"resnet20": ("ok", 3), "plain20": ("nan", 0)}
    assert "stopped: loss NaN at step 1" in out.read_text()


def test_ctrl_c_still_writes_the_steps_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = training.sgd_step
    calls = {"n": 0}

    def interrupting(*args: Any) -> float:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(training, "sgd_step", interrupting)
    out = tmp_path / "r.html"
    res = run("resnet20", "plain20", "--steps", "5", *SMALL, "-o", str(out))
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["settings"]["interrupted"] and data["settings"]["steps_done"] == 1
    assert "this report covers the steps done" in out.read_text()


def test_ctrl_c_during_initial_traces_writes_the_models_traced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resviz.studies import compare as compare_mod

    real = compare_mod._probe
    calls = {"n": 0}

    def interrupting(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(compare_mod, "_probe", interrupting)
    out = tmp_path / "r.html"
    res = run("resnet20", "plain20", "--steps", "5", *SMALL, "-o", str(out))
    assert res.exit_code == 130, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["settings"]["interrupted"] and data["settings"]["steps_done"] == 0
    assert [m["name"] for m in data["models"]] == ["resnet20"]
    assert "this report covers the steps done" in out.read_text()


def test_ctrl_c_before_any_trace_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resviz.studies import compare as compare_mod

    def interrupting(*_args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(compare_mod, "_probe", interrupting)
    res = run("resnet20", "plain20", "--steps", "5", *SMALL, "-o", str(tmp_path / "r.html"))
    assert res.exit_code != 0 and res.output.strip() == "error: interrupted"
    assert not list(tmp_path.iterdir())
