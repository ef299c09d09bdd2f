"""Shared fixtures: reference data copied from torchvision 0.29.1 into tests/data.

Every test under ``tests/heavy/`` is marked ``heavy``: ``make test`` leaves those out
(``-m "not heavy"``) and ``make check-heavy`` runs them (``-m heavy``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
HEAVY = Path(__file__).parent / "heavy"


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HEAVY in item.path.parents:
            item.add_marker(pytest.mark.heavy)


@pytest.fixture(scope="session")
def tv_reference() -> dict[str, Any]:
    return json.loads((DATA / "torchvision_resnets.json").read_text())["models"]


@pytest.fixture(scope="session")
def fidelity() -> dict[str, Any]:
    return json.loads((DATA / "torchvision_fidelity_vectors.json").read_text())


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread for the whole suite.

    The tensors in these tests are small, so a second thread gains nothing, and on a busy 2-core
    machine OpenMP threads spinning on each other slowed single tests from 0.3 s to 5 s.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
