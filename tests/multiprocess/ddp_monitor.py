"""Run under ``torchrun --nproc_per_node 2`` (gloo, CPU) by tests/test_distributed.py.

Case 1: ``resviz.monitor`` on a DistributedDataParallel resnet20, on the same network sharded
with FSDP2's ``fully_shard`` and wrapped in the older ``FullyShardedDataParallel`` (BatchNorm in
eval mode, so the samples are independent) gives on every rank what one process measures on the
concatenated batch: blocks, layers and parameters. Case 2: ranks monitoring
different steps fail in one line. Case 3: a rank that reads its series while the other never does
fails in one line when the process group times out, not hangs. Each rank writes what it saw to
``OUT/rank<r>.json``.
"""

from __future__ import annotations

import copy
import datetime
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import resviz
from resviz.errors import ResvizError

PER_RANK = 4


def _batches(world: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    n = world * PER_RANK
    return [(torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)) for _ in range(3)]


def batchnorm_eval(model: nn.Module) -> None:
    """BatchNorm in eval mode: each sample's output then depends on that sample only, so numbers
    over the ranks' slices can equal one process's on the whole batch."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def network() -> nn.Module:
    """resnet20, seeded, with :func:`batchnorm_eval` (the model of every multi-process test)."""
    torch.manual_seed(0)
    model = resviz.build_model("resnet20")
    batchnorm_eval(model)
    return model


def _sharded(model: nn.Module) -> nn.Module:
    """FSDP2: each stage and the whole model sharded across the ranks (parameters become DTensors)."""
    from torch.distributed.fsdp import fully_shard

    for stage in (model.layer1, model.layer2, model.layer3):  # type: ignore[union-attr]
        fully_shard(stage)
    fully_shard(model)
    return model


def _fsdp1(model: nn.Module) -> nn.Module:
    """The older FSDP wrapper around the whole model: one flat parameter, sharded across the ranks."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel(model, use_orig_params=True, device_id=torch.device("cpu"))


def _train(model: nn.Module, batches: list, rank: int | None, **kw: object) -> resviz.MonitorSeries:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with resviz.monitor(model, every=1, **kw) as mon:
        for x, y in batches:
            if rank is not None:
                x, y = x[rank * PER_RANK:(rank + 1) * PER_RANK], y[rank * PER_RANK:(rank + 1) * PER_RANK]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log_loss(loss)
        return mon.series


def _flat(series: resviz.MonitorSeries) -> dict[str, float]:
    out: dict[str, float] = {}
    for snap in series.snapshots:
        for b in snap.blocks:
            for key in ("grad_main", "grad_skip", "grad_total", "main_rms", "skip_rms"):
                out[f"{snap.step}/{b.name}/{key}"] = getattr(b, key)
        for p in snap.params:
            out[f"{snap.step}/{p.name}/grad"] = p.grad_norm
            out[f"{snap.step}/{p.name}/weight"] = p.weight_norm
        for lr in snap.layers:
            for key in LAYER_FIELDS:
                out[f"{snap.step}/layer/{lr.name}#{lr.call}/{key}"] = getattr(lr, key)
    for step, loss in zip(series.loss_steps, series.loss_values, strict=True):
        out[f"{step}/loss"] = loss
    return out


LAYER_FIELDS = ("mean", "std", "rms", "min", "max", "zero_fraction", "nan_count", "inf_count")


def _hists(series: resviz.MonitorSeries) -> dict[str, list[int]]:
    return {f"{s.step}/{lr.name}#{lr.call}": list(lr.hist_counts) for s in series.snapshots for lr in s.layers}


UNEVEN = (4, 2)  # samples per rank and step in the case of unequal local batches


def _uneven(model: nn.Module, batches: list, rank: int | None) -> resviz.MonitorSeries:
    """Rank 0 takes 4 samples a step, rank 1 takes 2; ``rank=None``: one process on all 6, with
    DDP's objective, the mean of the two ranks' mean losses."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with resviz.monitor(model, every=1, reduce=None if rank is not None else "local") as mon:
        for x, y in batches:
            parts = [(x[:4], y[:4]), (x[4:6], y[4:6])]
            if rank is None:
                out = model(torch.cat([p[0] for p in parts]))
                loss = (F.cross_entropy(out[:4], parts[0][1]) + F.cross_entropy(out[4:], parts[1][1])) / 2
            else:
                loss = F.cross_entropy(model(parts[rank][0]), parts[rank][1])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.log_loss(loss)  # globally, the mean of the ranks' losses: the objective itself
        return mon.series


def main(out: Path) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=8))
    rank, world = dist.get_rank(), dist.get_world_size()
    batches = _batches(world)
    seen: dict[str, object] = {}
    base = network()
    series = _train(DistributedDataParallel(copy.deepcopy(base)), batches, rank)
    alone = _train(copy.deepcopy(base), batches, None, reduce="local")
    seen["global"], seen["alone"] = _flat(series), _flat(alone)
    seen["meta"] = [series.world_size, series.backend, series.reduce, list(series.batches)]
    seen["saved"] = resviz.save_series(series, out / "shared.json") is not None  # rank 0 only
    seen["saved_all"] = resviz.save_series(series, out / f"own{rank}.json", all_ranks=True) is not None
    local = _train(DistributedDataParallel(copy.deepcopy(base)), batches, rank, reduce="local")
    seen["local"], seen["local_hists"], seen["hists"] = _flat(local), _hists(local), _hists(series)
    seen["fsdp2"] = _flat(_train(_sharded(copy.deepcopy(base)), batches, rank))
    seen["fsdp1"] = _flat(_train(_fsdp1(copy.deepcopy(base)), batches, rank))
    seen["uneven"] = _flat(_uneven(DistributedDataParallel(copy.deepcopy(base)), batches, rank))
    seen["uneven_alone"] = _flat(_uneven(copy.deepcopy(base), batches, None))
    try:  # case 2: rank 1 monitors every step, rank 0 every other step
        model = DistributedDataParallel(copy.deepcopy(base))
        with resviz.monitor(model, every=1 + (rank == 0)) as mon:
            for x, y in batches:
                F.cross_entropy(model(x[:PER_RANK]), y[:PER_RANK]).backward()
            mon.series  # noqa: B018 (reading it combines the ranks' numbers)
        seen["mismatch"] = "no error"
    except ResvizError as exc:
        seen["mismatch"] = str(exc)
    if rank == 0:  # case 3: only rank 0 monitors a step and reads its series
        model = copy.deepcopy(base)
        try:
            with resviz.monitor(model, every=1) as mon:
                F.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
                mon.series  # noqa: B018
            seen["alone_reads"] = "no error"
        except ResvizError as exc:
            seen["alone_reads"] = str(exc)
    (out / f"rank{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
