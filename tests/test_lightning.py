"""ResvizCallback in a real Lightning DDP run (two CPU ranks, gloo, launched by Lightning itself):
what the Trainer's logger receives equals one process on the two ranks' samples together."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import resviz

pytest.importorskip("lightning")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "multiprocess"))
import lightning_ddp as run  # noqa: E402


@pytest.fixture(scope="module", params=["lightning.pytorch", "pytorch_lightning"])
def logged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[dict[str, str]], list[dict]]:
    """The two-rank run, with ``lightning.pytorch`` and with the older ``pytorch_lightning``."""
    package = request.param
    pytest.importorskip(package.split(".")[0])
    out = tmp_path_factory.mktemp("lightning")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "LIGHTNING_PACKAGE": package}
    res = subprocess.run([sys.executable, str(ROOT / "tests" / "multiprocess" / "lightning_ddp.py"), str(out)],
                         env=env, cwd=out, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "package.txt").read_text().startswith(package.split(".")[0] + ".")  # the callback's own base
    rows = list(csv.DictReader((out / "run" / "version_0" / "metrics.csv").open()))
    return rows, [json.loads((out / f"series{r}.json").read_text()) for r in (0, 1)]


def test_the_logger_gets_global_numbers_equal_to_one_process(logged: tuple[list[dict[str, str]], list[dict]]) -> None:
    rows, _ = logged
    net, ds = run.network(), run.data()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    per_step = run.PER_RANK * 2
    with resviz.monitor(net, every=1) as mon:
        for k in range(run.STEPS):
            x, y = ds.tensors[0][per_step * k:per_step * (k + 1)], ds.tensors[1][per_step * k:per_step * (k + 1)]
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log_loss(loss)
    alone = mon.series
    assert [int(r["step"]) for r in rows] == list(alone.steps) == [0, 1]
    for snap, row in zip(alone.snapshots, rows, strict=True):
        for b in snap.blocks:
            for field in ("grad_main", "grad_skip", "grad_total", "main_rms", "skip_rms"):
                assert float(row[f"resviz/{b.name}/{field}"]) == pytest.approx(getattr(b, field), rel=1e-5)
        for p in snap.params:
            assert float(row[f"resviz/param/{p.name}/grad_norm"]) == pytest.approx(p.grad_norm, rel=1e-5)
        assert float(row["resviz/loss"]) == pytest.approx(alone.loss_values[snap.step], rel=1e-6)


def test_every_rank_holds_the_same_global_series(logged: tuple[list[dict[str, str]], list[dict]]) -> None:
    _, series = logged
    assert series[0] == series[1]
    assert (series[0]["world_size"], series[0]["backend"], series[0]["reduce"]) == (2, "gloo", "global")
    assert series[0]["batches"] == [8, 8]
