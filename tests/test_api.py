"""resviz.api: every target, size and resource decision made once, for every surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import resviz
from resviz import api
from resviz.cli import app
from resviz.errors import ResvizError
from resviz.records import Comparison

V0 = Path(__file__).parent / "data" / "v0"


def test_nothing_is_measured_on_the_meta_device() -> None:
    with pytest.raises(ResvizError, match="meta device"):
        api.compare(["resnet20", "plain20"], batch=2, input_size="3x8x8", device="meta")
    with pytest.raises(ResvizError, match="meta device"):
        api.trace("resnet20", input_size="2x3x8x8", device="meta")
    res = CliRunner().invoke(app, ["compare", "resnet20", "plain20", "--device", "meta", "-o", "x.json"])
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1].startswith("error: cannot trace on the meta")


class _Counting(nn.Module):
    """A user's module that counts its forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_a_user_module_runs_once_per_trace() -> None:
    """The memory check runs on a meta copy of resviz's own architectures only, and the user's hooks
    see the real forward only. Finding the residual structure runs the user's forward once more,
    on the meta device and without their hooks, once per model and input shape (cached)."""
    model = _Counting()
    seen: list[tuple[int, ...]] = []
    model.conv.register_forward_hook(lambda _m, _a, out: seen.append(tuple(out.shape)))
    tr = api.trace(model, input_size="2x3x8x8")
    assert model.calls == 2 and seen == [(2, 4, 8, 8)]
    assert tr.model == "_Counting" and tr.input_shape == (2, 3, 8, 8)
    api.trace(model, input_size="2x3x8x8")
    assert model.calls == 3 and seen == [(2, 4, 8, 8)] * 2


def test_a_resviz_network_too_large_for_memory_is_refused_before_it_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    from resviz.api import preflight, tracing

    def never(*_: object, **__: object) -> None:
        raise AssertionError("traced although too large")

    monkeypatch.setattr(preflight, "available_memory", lambda _device: preflight.Available(64 * 2**20, "MemAvailable"))
    monkeypatch.setattr(tracing, "resolve_model", never)
    monkeypatch.setattr(tracing, "trace_module", never)
    with pytest.raises(ResvizError, match="lower the batch"):
        api.trace("resnet20", input_size="64x3x32x32")


def test_analyze_spec_reads_sizes_like_every_other_entry_point() -> None:
    spec = api.get_spec("resnet20")
    assert api.analyze_spec(spec).input_shape == (1, 3, 32, 32)
    assert api.analyze_spec(spec, "2x3x16x16").input_shape == (2, 3, 16, 16)
    assert api.analyze_spec(spec, "3x8x8").input_shape == (1, 3, 8, 8)


def test_custom_networks_are_read_alike_everywhere() -> None:
    from resviz.dashboard.state import ViewState, defaults

    cli = api.resolve_spec("custom", overrides=api.parse_overrides(["layers=2,2,2,2"]))
    view = ViewState.from_mapping({**defaults("custom"), "layers": "2,2,2,2", "widths": "64,128,256,512"})
    assert cli == view.spec() and cli.name == "custom"
    named = api.resolve_spec("custom", overrides=api.parse_overrides(["layers=1,1", "name=tiny"]))
    assert named.name == "tiny" and named.widths == (64, 128)
    with pytest.raises(ResvizError, match="--set flag preact expects true or false"):
        api.parse_overrides(["preact=maybe"], flag="--set flag")


def test_write_report_writes_each_format_whole(tmp_path: Path) -> None:
    c = Comparison.from_dict(json.loads((V0 / "comparison-resnet20-plain20.json").read_text()))
    page = resviz.write_report(c, tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "resnet20" in page
    assert "| resnet20 |" in resviz.write_report(c, tmp_path / "r.md").read_text()
    assert Comparison.from_dict(json.loads(resviz.write_report(c, tmp_path / "r.json").read_text())) == c
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json", "r.md"]  # no temporary file left
    with pytest.raises(ResvizError, match="does not exist"):
        resviz.write_report(c, tmp_path / "missing" / "r.html")
    with pytest.raises(ResvizError, match="cannot tell the report format"):
        resviz.write_report(c, tmp_path / "r.txt")


def test_the_preset_list_needs_no_pytorch() -> None:
    code = "import sys, resviz; n = len(resviz.list_models()); print(n); sys.exit('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and int(res.stdout) > 10, res.stdout + res.stderr
