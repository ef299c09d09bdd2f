"""``resviz dashboard``: the Streamlit dashboard of an installed resviz, on this machine only."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Annotated

import typer

from resviz.cli import app
from resviz.cli.common import user_errors
from resviz.errors import ResvizError

#: Streamlit settings the dashboard needs wherever it is started (a checkout's
#: .streamlit/config.toml holds the same): bound to this machine, since it runs models on uploaded
#: files; uploads up to 1000 MB (room for wide_resnet101_2's 126.9 M float32 parameters); no file watcher
#: (it would watch every file torch imports); no usage statistics.
SERVER_FLAGS = (
    "--server.address", "127.0.0.1", "--server.headless", "true", "--server.maxUploadSize", "1000",
    "--server.fileWatcherType", "none", "--server.runOnSave", "false", "--browser.gatherUsageStats", "false",
)


@app.command("dashboard")
@user_errors
def dashboard_cmd(
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port on 127.0.0.1.")] = 8501,
) -> None:
    """Start the dashboard (Streamlit) on http://127.0.0.1:PORT; Ctrl-C stops it."""
    from resviz.extras import require

    require("streamlit", "dashboard", "the dashboard")
    found = importlib.util.find_spec("resviz.dashboard.app")
    if found is None or found.origin is None:
        raise ResvizError("the dashboard's script is missing from this installation of resviz: reinstall it")
    cmd = [sys.executable, "-m", "streamlit", "run", found.origin, *SERVER_FLAGS, "--server.port", str(port)]
    sys.stdout.flush()
    try:  # this process becomes the server: Ctrl-C and signals reach Streamlit directly
        os.execv(sys.executable, cmd)
    except OSError as exc:
        raise ResvizError(f"cannot start Streamlit: {exc.strerror or exc}") from None
