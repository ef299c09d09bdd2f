"""Shared fixtures: reference data copied from torchvision 0.29.1 into tests/data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def tv_reference() -> dict[str, Any]:
    return json.loads((DATA / "torchvision_resnets.json").read_text())["models"]


@pytest.fixture(scope="session")
def fidelity() -> dict[str, Any]:
    return json.loads((DATA / "torchvision_fidelity_vectors.json").read_text())
