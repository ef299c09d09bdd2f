"""Import PyTorch while the dashboard's server starts, not when the first visitor arrives.

A Streamlit script runs only when a browser session connects, so without this the first page of a
fresh server waits for ``import torch`` (1.5-2 s of the default page's 3 s budget on two cores,
see bench/RESULTS.md). ``app.py`` hands :func:`lifespan` to ``st.App``, which ``streamlit run``
enters as the server starts: a daemon thread then imports the modules the default page needs while
the server answers and the browser loads Streamlit's frontend. A script that arrives earlier waits
on Python's import lock for the rest of the import; it never imports twice.

Only modules are loaded here: nothing is computed or cached, so every number on the page is still
computed for the session that asks for it.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

#: What the default page (Architecture of ResNet-50) imports beyond Streamlit, heaviest first.
MODULES: tuple[str, ...] = ("torch", "resviz.api", "resviz.render.diagrams", "graphviz")

_started = threading.Event()
_finished = threading.Event()


def _import_all() -> None:
    try:
        import time
        print("warm start", time.time(), flush=True, file=__import__("sys").stderr)
        for name in MODULES:
            importlib.import_module(name)
            print("warm", name, time.time(), flush=True, file=__import__("sys").stderr)
    except Exception:  # the page imports the same modules and shows the error there
        pass
    finally:
        _finished.set()


def start() -> threading.Thread | None:
    """Start the background import once per process; ``None`` if it was already started."""
    if _started.is_set():
        return None
    _started.set()
    thread = threading.Thread(target=_import_all, name="resviz-warm-up", daemon=True)
    thread.start()
    return thread


def torch_ready() -> bool:
    """Whether ``import torch`` would return at once (a module still being imported by the warm-up
    thread is already in ``sys.modules``, so its presence there is not enough)."""
    if _started.is_set() and not _finished.is_set():
        return False
    return "torch" in sys.modules


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """``st.App`` lifespan: start the background import and serve at once."""
    start()
    yield
