"""Shared fixtures: reference data copied from torchvision 0.29.1 into tests/data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

DATA = Path(__file__).parent / "data"

#: Property-based tests draw the same examples on every run and machine (``derandomize``): a CI
#: failure reproduces locally, and the suite's time does not depend on luck.
settings.register_profile(
    "resviz", max_examples=50, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("resviz")


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
