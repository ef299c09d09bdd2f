"""Shared fixtures: reference data copied from torchvision 0.29.1 into tests/data.

Every test under ``tests/heavy/`` is marked ``heavy``: ``make test`` leaves those out
(``-m "not heavy"``) and ``make check-heavy`` runs them (``-m heavy``) with ``RESVIZ_NO_SKIPS=1``,
under which a skipped test fails the run: there, a missing tool is a broken check, not a reason
to pass.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

DATA = Path(__file__).parent / "data"
HEAVY = Path(__file__).parent / "heavy"


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HEAVY in item.path.parents:
            item.add_marker(pytest.mark.heavy)



def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("RESVIZ_NO_SKIPS") == "1" and skipped:
        print(f"\nerror: {len(skipped)} test(s) skipped where every check must run (RESVIZ_NO_SKIPS=1)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.fixture(scope="session")
def monitored_resnet20() -> Any:
    """Five SGD steps of ResNet-20 on random data under ``resviz.monitor``, a snapshot every second
    step: the monitor (with ``series``, ``to_dict`` and ``to_tensorboard``) after the loop."""
    import torch
    import torch.nn.functional as F

    import resviz

    torch.manual_seed(0)
    model = resviz.build_model("resnet20", device="cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with resviz.monitor(model, every=2) as mon:
        for _ in range(5):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log_loss(loss)
    return mon
