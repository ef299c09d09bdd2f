"""Every notebook in examples/ runs from top to bottom and shows rich output.

Each notebook is executed in a fresh python3 kernel of this interpreter (nbclient), with this
checkout first on the kernel's import path, a time limit per cell and no network use. A cell that
raises fails the test; so does a notebook that produced no HTML and no SVG output, since showing
records and diagrams inline is what the notebooks are for.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
CELL_TIMEOUT_S = 120
RICH = ("text/html", "image/svg+xml")
KERNEL = "resviz-tests-python3"

pytestmark = pytest.mark.heavy


def _rich_outputs(book: Any) -> list[str]:
    """The mime types of every rich (HTML or SVG) output the executed notebook holds."""
    found = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            found += [m for m in out.get("data", {}) if m in RICH]
    return found


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


def test_notebooks_are_saved_without_outputs() -> None:
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        code = [c for c in book.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name


def _kernel_of_this_interpreter(where: Path) -> None:
    """A python3 kernel spec that starts this interpreter, found first through ``JUPYTER_PATH``:
    a kernel named ``python3`` elsewhere on the machine may run another Python without resviz."""
    spec = where / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _kernel_of_this_interpreter(tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    # One intra-op thread, as for the rest of the suite (conftest.py): the tensors are small, and on a
    # busy 2-core machine two OpenMP threads spinning on each other made one notebook 10x slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL, resources={"metadata": {"path": str(EXAMPLES)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    print(f"{path.name}: executed in {seconds:.1f} s")
    assert _rich_outputs(book), f"{path.name} showed no HTML or SVG output"
