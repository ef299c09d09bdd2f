"""``resviz dashboard``: the dashboard of an installed resviz, served on 127.0.0.1 only."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from resviz.cli.dashboard_cmd import SERVER_FLAGS

ROOT = Path(__file__).resolve().parents[1]


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
