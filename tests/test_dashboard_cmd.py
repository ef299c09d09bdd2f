"""``resviz dashboard``: the dashboard of an installed resviz, served on 127.0.0.1 only."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from resviz.cli import app, dashboard_cmd
from resviz.cli.dashboard_cmd import SERVER_FLAGS

ROOT = Path(__file__).resolve().parents[1]
TV = "tests.families.tv_resnet:build"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_command_serves_the_packaged_dashboard_on_localhost(tmp_path: Path) -> None:
    """Started from a folder that is not a checkout (no app.py, no .streamlit/config.toml near it):
    the server answers on 127.0.0.1 and runs the package's script."""
    port = _free_port()
    cmd = [sys.executable, "-c", "from resviz.cli import main; main()", "dashboard", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 60, ""
        while time.monotonic() < deadline and not answer:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    answer = r.read().decode()
            except OSError:
                time.sleep(0.5)
        assert answer == "ok"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"127.0.0.1:{port}" in out or f"localhost:{port}" in out, out[-2000:]


def test_the_server_is_bound_to_this_machine_and_watches_no_files() -> None:
    flags = dict(zip(SERVER_FLAGS[::2], SERVER_FLAGS[1::2], strict=True))
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--server.fileWatcherType"] == "none" and flags["--browser.gatherUsageStats"] == "false"


def test_a_model_that_is_not_a_factory_exits_2_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_server(*args: Any) -> None:
        raise AssertionError("the server must not start")

    monkeypatch.setattr(dashboard_cmd.os, "execv", no_server)
    result = CliRunner().invoke(app, ["dashboard", "--model", TV, "--model", "bad"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--model 'bad' is not a model factory" in lines[0], result.stderr


def test_declared_models_reach_the_script_after_a_double_dash_unimported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """``--model`` is checked for its form only; the server imports it when its page opens."""
    marker = tmp_path / "imported"
    source = tmp_path / "mine.py"
    source.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\ndef build(): pass\n")
    started: list[list[str]] = []
    monkeypatch.setattr(dashboard_cmd.os, "execv", lambda exe, cmd: started.append(cmd))
    result = CliRunner().invoke(app, ["dashboard", "--model", TV, "--model", f"{source}:build"])
    assert result.exit_code == 0, result.output
    cmd = started[0]
    assert cmd[cmd.index("--"):] == ["--", "--model", TV, "--model", f"{source}:build"]
    assert cmd.index("--server.port") < cmd.index("--")  # Streamlit's flags stay before the script's
    assert not marker.exists()
