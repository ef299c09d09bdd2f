"""Statistics combined across torch.distributed ranks: exact combination rules, and a real
two-rank run (torchrun, gloo, CPU) of DDP and FSDP2 against one process on the concatenated batch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import resviz
from resviz.errors import ResvizError
from resviz.measure.distributed import Combine, Reduce, combine, resolve_reduce

ROOT = Path(__file__).resolve().parents[1]


def test_each_kind_combines_exactly() -> None:
    rows = torch.tensor([[3.0, 2.0, 5.0, 1.0, -1.0], [4.0, 3.0, 5.0, 7.0, -4.0]], dtype=torch.float64)
    kinds = [Combine.NORM, Combine.SUM, Combine.SAME, Combine.MAX, Combine.MIN]
    assert combine(rows, kinds).tolist() == [5.0, 5.0, 5.0, 7.0, -4.0]  # sqrt(9 + 16) = 5


def test_a_norm_of_slices_is_the_norm_of_the_whole() -> None:
    g = torch.Generator().manual_seed(0)
    whole = torch.randn(1000, generator=g, dtype=torch.float64)
    parts = whole.split([300, 700])
    rows = torch.tensor([[float(p.norm())] for p in parts], dtype=torch.float64)
    assert float(combine(rows, [Combine.NORM])[0]) == pytest.approx(float(whole.norm()), rel=1e-12)


def test_without_a_process_group_numbers_are_local_and_global_is_refused() -> None:
    assert resolve_reduce(None) == (Reduce.LOCAL, None)
    assert resolve_reduce("local") == (Reduce.LOCAL, None)
    with pytest.raises(ResvizError, match=r"needs an initialised torch\.distributed process group"):
        resolve_reduce("global")
    with pytest.raises(ResvizError, match="reduce must be global or local"):
        resviz.monitor(torch.nn.Linear(2, 2), reduce="everywhere").__enter__()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return _launch(tmp_path_factory.mktemp("ranks"))


def _launch(out: Path) -> list[dict]:
    """tests/multiprocess/ddp_monitor.py under torchrun with two gloo ranks (about 10 s)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "multiprocess" / "ddp_monitor.py"), str(out)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in (0, 1):
        seen[r]["files"] = sorted(p.name for p in out.glob("*.json") if not p.name.startswith("rank"))
    return seen


def _assert_equal(got: dict, alone: dict) -> None:
    """Every number of one process (``alone``) equals the ranks' global one, to 1e-5: relative, or
    for a layer's statistics relative to that layer's RMS (a mean near zero is summed in another
    order on each rank)."""
    assert set(got) == set(alone)
    for key, want in alone.items():
        if want is None:
            assert got[key] is None, key
        elif "/layer/" in key:
            scale = alone[key.rsplit("/", 1)[0] + "/rms"]
            assert got[key] == pytest.approx(want, rel=1e-5, abs=1e-5 * scale), key
        else:
            assert got[key] == pytest.approx(want, rel=1e-5, abs=1e-12), key


def test_ddp_monitor_equals_one_process_on_the_concatenated_batch(two_ranks: list[dict]) -> None:
    """Per block (gradient through the main path, the skip, in total; the addends' RMS), per
    parameter (gradient and weight norms) and the loss: every rank equal to one process, 1e-5."""
    for seen in two_ranks:
        assert len(seen["alone"]) > 200
        _assert_equal(seen["global"], seen["alone"])
        assert seen["meta"] == [2, "gloo", "global", [8, 8, 8]]
    assert two_ranks[0]["global"] == two_ranks[1]["global"]  # the same numbers on every rank, bit for bit


def test_fsdp2_sharded_parameters_equal_one_process_too(two_ranks: list[dict]) -> None:
    """FSDP2 (``fully_shard``): parameters and gradients are DTensor shards; their norms combine as
    slices of one tensor, block statistics as under DDP."""
    for seen in two_ranks:
        _assert_equal(seen["fsdp2"], seen["alone"])


def test_the_older_fsdp_wrapper_equals_one_process_too(two_ranks: list[dict]) -> None:
    """``FullyShardedDataParallel``: each rank holds a disjoint flat piece of the parameters (some
    empty); their norms combine as slices, and every number equals one process."""
    for seen in two_ranks:
        _assert_equal(seen["fsdp1"], seen["alone"])


def test_layer_statistics_are_those_of_the_concatenated_batch(two_ranks: list[dict]) -> None:
    """Mean, std, RMS, min, max, zero fraction and NaN/Inf counts of every layer output, combined
    across the ranks, equal one process's on the whole batch (checked inside _assert_equal too)."""
    layers = [k for k in two_ranks[0]["alone"] if "/layer/" in k]
    assert len(layers) == 3 * 70 * 8  # three steps, resnet20's 70 leaf outputs, eight numbers each
    for seen in two_ranks:
        _assert_equal({k: seen["global"][k] for k in layers}, {k: seen["alone"][k] for k in layers})


def test_global_histograms_are_the_sum_of_the_ranks_own(two_ranks: list[dict]) -> None:
    r0, r1 = (seen["local_hists"] for seen in two_ranks)
    assert set(r0) == set(r1) == set(two_ranks[0]["hists"]) and len(r0) == 3 * 70
    for key, counts in two_ranks[0]["hists"].items():
        assert counts == [a + b for a, b in zip(r0[key], r1[key], strict=True)], key
        assert sum(counts) > 0


def test_unequal_local_batches_give_the_numbers_of_ddps_own_objective(two_ranks: list[dict]) -> None:
    """Rank 0 with 4 samples a step, rank 1 with 2: DDP optimises the mean of the two ranks' mean
    losses; blocks, parameters and the loss all equal one process computing that objective."""
    for seen in two_ranks:
        _assert_equal(seen["uneven"], seen["uneven_alone"])


def test_local_numbers_are_each_ranks_own(two_ranks: list[dict]) -> None:
    """reduce="local" keeps rank-local numbers: the block gradients differ from the global ones."""
    for seen in two_ranks:
        differ = [k for k, v in seen["alone"].items()
                  if "/grad_" in k and v and not math.isclose(seen["local"][k], v, rel_tol=1e-3)]
        assert differ, "rank-local block gradients equal the global ones"


def test_ranks_that_monitor_different_steps_fail_in_one_line(two_ranks: list[dict]) -> None:
    for seen in two_ranks:
        assert seen["mismatch"].startswith("the ranks recorded different numbers of statistics")
        assert "\n" not in seen["mismatch"]


def test_a_rank_reading_alone_fails_instead_of_hanging(two_ranks: list[dict]) -> None:
    message = two_ranks[0]["alone_reads"]
    assert message.startswith("combining statistics across ranks failed") and "\n" not in message


def test_only_rank_0_writes_a_runs_file_unless_every_rank_is_asked(two_ranks: list[dict]) -> None:
    assert [seen["saved"] for seen in two_ranks] == [True, False]
    assert [seen["saved_all"] for seen in two_ranks] == [True, True]
    assert two_ranks[0]["files"] == ["own0.json", "own1.json", "shared.json"]
