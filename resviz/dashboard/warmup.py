"""Import PyTorch while the dashboard's server starts, not when the first visitor arrives.

A Streamlit script runs only when a browser session connects, so without this the first page of a
fresh server waits for ``import torch``, half of the default page's time budget (bench/RESULTS.md,
Dashboard). ``app.py`` hands :func:`lifespan` to ``st.App``, which ``streamlit run``
enters before the server accepts connections: the server answers once the modules the default
page needs are loaded, and its first page costs what every later one does.

The import runs before the server answers, not beside it: on two cores a background import
competes with serving Streamlit's frontend for the interpreter lock, and the first page measured
no faster than without a warm-up (bench/RESULTS.md). Only modules are loaded: nothing is computed
or cached, so every number on a page is still computed for the session that asks for it.

``st.App`` is marked experimental in Streamlit's documentation. Should a later Streamlit stop
serving it, ``streamlit run app.py`` runs the file as a plain script: the dashboard works the same
and its first page imports PyTorch itself, with the stage sketch shown meanwhile.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

#: What the default page (Architecture of ResNet-50) imports beyond Streamlit, heaviest first.
MODULES: tuple[str, ...] = ("torch", "resviz.api", "resviz.render.diagrams", "graphviz")


def import_modules() -> None:
    for name in MODULES:
        importlib.import_module(name)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """``st.App`` lifespan: load :data:`MODULES`, then serve.

    In a worker thread, so that the event loop still handles Ctrl-C during the import. An import
    that fails is left to the page, which imports the same modules and shows the error.
    """
    with suppress(ImportError):
        await asyncio.to_thread(import_modules)
    yield
