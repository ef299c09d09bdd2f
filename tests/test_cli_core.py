"""The static commands: output formats, custom specs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from resviz.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_summary_json_has_the_documented_fields() -> None:
    code, out, _ = run("summary", "resnet50", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    for key in ("model", "input_shape", "total_params", "total_macs", "layers", "stages"):
        assert key in doc
    assert doc["model"] == "resnet50" and doc["total_params"] == 25557032
    assert doc["input_shape"] == [1, 3, 224, 224]
    layer = doc["layers"][0]
    assert {"name", "type", "output_shape", "params", "macs"} <= set(layer)
    assert [s["name"] for s in doc["stages"]] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]


def test_summary_depth_folds_layers() -> None:
    code, out, _ = run("summary", "resnet18", "-f", "json", "--depth", "1")
    names = [row["name"] for row in json.loads(out)["layers"]]
    assert code == 0
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert sum(row["params"] for row in json.loads(out)["layers"]) == 11689512


def test_summary_csv_and_table() -> None:
    code, out, _ = run("summary", "resnet20", "-f", "csv")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("name,type,output_shape,params,macs")
    assert lines[1].startswith("conv1,Conv2d,1x16x32x32,432,")
    code, out, _ = run("summary", "resnet20")
    assert code == 0 and "conv4_x" in out and "He et al. 2015, Table 6" in out


def test_list_shows_every_preset_with_counts() -> None:
    code, out, _ = run("list", "--format", "json")
    rows = json.loads(out)
    assert code == 0
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet50"]["params"] == 25557032 and by_name["resnet50"]["macs"] == 4089184256
    assert "preact_resnet1001" in by_name and "plain34" not in by_name
    code, out, _ = run("list", "--plain", "-f", "csv")
    assert "plain34" in out


def test_custom_spec_from_flags_and_from_files(tmp_path: Path) -> None:
    code, out, _ = run("summary", "custom", "--set", "layers=1,1", "--set", "widths=8,16",
                       "--set", "stem=cifar", "--set", "stem_width=8", "-f", "json", "--input", "1x3x32x32")
    assert code == 0
    doc = json.loads(out)
    assert len(doc["blocks"]) == 2 and doc["spec"]["widths"] == [8, 16]
    spec = {"name": "tiny", "block": "bottleneck", "layers": [1, 1], "widths": [8, 16], "shortcut": "C"}
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    (tmp_path / "tiny.yaml").write_text("name: tiny\nblock: bottleneck\nlayers: [1, 1]\nwidths: [8, 16]\nshortcut: C\n")
    outs = []
    for f in ("tiny.json", "tiny.yaml"):
        code, out, _ = run("summary", str(tmp_path / f), "-f", "json", "-i", "1x3x64x64")
        assert code == 0
        outs.append(json.loads(out))
    assert outs[0] == outs[1]
    assert [b["shortcut"] for b in outs[0]["blocks"]] == ["projection", "projection"]


def test_set_overrides_a_preset_and_plain_switch() -> None:
    code, out, _ = run("summary", "resnet18", "--set", "shortcut=C", "-f", "json")
    assert code == 0
    assert {b["shortcut"] for b in json.loads(out)["blocks"]} == {"projection"}
    code, out, _ = run("summary", "resnet18", "--plain", "-f", "json")
    doc = json.loads(out)
    assert doc["model"] == "plain18" and {b["shortcut"] for b in doc["blocks"]} == {"none"}


def test_flops_reconcile_lists_each_counter() -> None:
    code, out, _ = run("flops", "resnet18", "--reconcile", "-i", "1x3x64x64", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    rows = {r["layer_type"]: r for r in doc["rows"]}
    conv = rows["Conv2d"]
    assert conv["fvcore"] == conv["resviz_macs"] == conv["torchinfo"]
    assert conv["flop_counter"] == 2 * conv["resviz_macs"]
    bn = rows["BatchNorm2d"]
    assert bn["resviz_macs"] == 0 and bn["fvcore"] > 0 and "fvcore" in bn["explanation"]
    assert rows["ReLU"]["fvcore"] == 0 and "skips" in rows["ReLU"]["explanation"]
    assert doc["totals"]["resviz_macs"] == sum(r["resviz_macs"] for r in doc["rows"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "resnet51"], "unknown model 'resnet51'; did you mean"),
        (["summary", "resnet18", "--input", "1x3"], "malformed input size"),
        (["summary", "resnet18", "--input", "1x4x64x64"], "expects 3 input channels"),
        (["summary", "resnet18", "--set", "shortcut=D"], "invalid shortcut 'D'"),
        (["summary", "resnet18", "--set", "layers=2,0,2,2"], "layers[1] = 0"),
        (["summary", "resnet50", "--set", "width_per_group=1", "--set", "widths=8,16,32,64"], "rounds to zero"),
        (["summary", "resnet18", "--set", "colour=red"], "unknown spec field"),
        (["summary", "custom"], "needs at least --set layers"),
        (["summary", "nope.json"], "cannot read spec file"),
        (["summary", "resnet18", "--format", "xml"], "unknown format"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_console_script_exits_2_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "resviz", "summary", "resnet18", "--input", "bad"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: malformed input size")
    assert "Traceback" not in proc.stderr


def test_summary_checks_a_checkpoint(tmp_path: Path) -> None:
    import torch

    from resviz.model.resnet import build_model

    path = tmp_path / "r20.pth"
    torch.save(build_model("resnet20", device="cpu").state_dict(), path)
    code, out, _ = run("summary", "resnet20", "--weights", str(path), "-f", "json")
    assert code == 0 and any("all 116 tensors match" in n for n in json.loads(out)["notes"])
    code, _, err = run("summary", "resnet32", "--weights", str(path))
    assert code == 2 and "does not match resnet32" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "junk.pth").write_bytes(b"junk")
    code, _, err = run("summary", "resnet20", "--weights", str(tmp_path / "junk.pth"))
    assert code == 2 and "cannot load checkpoint" in err


def test_write_atomic_gives_usual_permissions_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    import os
    import stat

    from resviz.errors import ResvizError
    from resviz.files import write_atomic

    target = write_atomic(tmp_path / "out.txt", "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    with pytest.raises(ResvizError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "out.txt", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_an_overridden_preset_is_not_compared_with_the_preset_figures() -> None:
    code, out, _ = run("summary", "resnet50", "--set", "layers=1,1,1,1")
    assert code == 0 and "resnet50-custom" in out and "DIFFER" not in out and "torchvision" not in out
    code, out, _ = run("summary", "resnet50", "--set", "shortcut=B")  # equal to the preset itself
    assert code == 0 and "equal torchvision's" in out and "-custom" not in out
