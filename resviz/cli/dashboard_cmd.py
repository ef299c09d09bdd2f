"""``resviz dashboard``: the Streamlit dashboard of an installed resviz, on this machine only.

``--model pkg.mod:factory`` (repeatable) adds the user's own models to the dashboard's model list.
They are handed to the script after ``--`` (Streamlit passes those to it as ``sys.argv``): a factory
imports and runs the user's code, so only whoever starts the server may name one, never a URL.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Annotated

import typer

from resviz.cli import app
from resviz.cli.common import user_errors
from resviz.errors import ResvizError, quote

#: Streamlit settings the dashboard needs wherever it is started (a checkout's
#: .streamlit/config.toml holds the same): bound to this machine, since it runs models on uploaded
#: files; uploads up to 1000 MB (room for a float32 checkpoint of the largest torchvision ResNet,
#: wide_resnet101_2); no file watcher (it would watch every file torch imports); no usage statistics.
SERVER_FLAGS = (
    "--server.address", "127.0.0.1", "--server.headless", "true", "--server.maxUploadSize", "1000",
    "--server.fileWatcherType", "none", "--server.runOnSave", "false", "--browser.gatherUsageStats", "false",
)


@app.command("dashboard")
@user_errors
def dashboard_cmd(
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port on 127.0.0.1.")] = 8501,
    model: Annotated[list[str] | None, typer.Option(
        "--model", metavar="FACTORY",
        help="Add your own model to the model list: pkg.mod:factory, file.py:factory, torchvision:NAME or "
             "timm:NAME (repeatable). Imported by the server when its page is opened; a URL can select it "
             "(?model=FACTORY) but never name a new one.",
    )] = None,
) -> None:
    """Start the dashboard (Streamlit) on http://127.0.0.1:PORT; Ctrl-C stops it."""
    from resviz.extras import require

    models = launch_args(model or [])
    require("streamlit", "dashboard", "the dashboard")
    found = importlib.util.find_spec("resviz.dashboard.app")
    if found is None or found.origin is None:
        raise ResvizError("the dashboard's script is missing from this installation of resviz: reinstall it")
    cmd = [sys.executable, "-m", "streamlit", "run", found.origin, *SERVER_FLAGS, "--server.port", str(port),
           *models]
    sys.stdout.flush()
    try:  # this process becomes the server: Ctrl-C and signals reach Streamlit directly
        os.execv(sys.executable, cmd)
    except OSError as exc:
        raise ResvizError(f"cannot start Streamlit: {exc.strerror or exc}") from None


def launch_args(models: list[str]) -> list[str]:
    """The script arguments that declare ``models`` (``-- --model A --model B``), after checking
    that each names a factory; nothing is imported here (the server does, when its page opens)."""
    from resviz.api.factories import is_factory

    for target in models:
        if not is_factory(target):
            raise ResvizError(f"--model {quote(target)} is not a model factory (expected pkg.mod:factory, "
                              "file.py:factory, torchvision:NAME or timm:NAME)")
    return ["--", *(arg for target in models for arg in ("--model", target.strip()))] if models else []
