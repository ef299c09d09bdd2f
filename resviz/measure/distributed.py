"""Statistics combined across the ranks of ``torch.distributed``: global numbers, exactly.

Under data parallelism every rank sees its own slice of the batch, so a norm measured on one rank
is a norm of a slice. The monitor's numbers are norms, sums and extrema, and each combines
exactly: a norm over the union of the slices is the root of the sum of the slices' squared norms,
a count is a sum, an extremum the extremum of the ranks'. Each rank packs its values into one
float64 vector, one ``all_gather`` brings every rank's vector to every rank (after a one-integer
``all_gather`` of the vectors' lengths, so ranks that recorded different steps fail at once with
one line instead of mixing numbers), and every rank combines the rows in the same order, so all
ranks hold the same result bit for bit.

The gradient convention is DDP's own: DDP averages the ranks' gradients, so the loss it optimises
is the mean of the ranks' losses, and the gradient at a sample of rank r is ``1 / W`` times the
gradient of that rank's own loss (W ranks). The monitor divides a block gradient's combined norm by
W, so block gradients, parameter gradients and the loss of one snapshot describe the same
objective. With equal local batches and mean losses that objective is the mean over the global
batch: the numbers equal one process on the union of the batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
import torch.distributed as dist
from torch import Tensor

from resviz.errors import ResvizError, one_line
from resviz.measure.transfer import HostTransfer


class Combine(StrEnum):
    """How one value combines across ranks."""

    SUM = "sum"  # counts and batch sizes
    NORM = "norm"  # L2 norms of slices: the root of the sum of squares
    SAME = "same"  # equal on every rank (replicated weights, gradients after DDP's all-reduce)
    MAX = "max"
    MIN = "min"


class Reduce(StrEnum):
    """Whether a monitor combines its numbers across ranks (``global``) or keeps each rank's own."""

    GLOBAL = "global"
    LOCAL = "local"


@dataclass(frozen=True)
class Group:
    """The process group statistics are combined over."""

    world: int
    rank: int
    backend: str


def current_group() -> Group | None:
    """The default process group when one is initialised, else ``None``."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return Group(dist.get_world_size(), dist.get_rank(), str(dist.get_backend()))


def resolve_reduce(reduce: str | Reduce | None) -> tuple[Reduce, Group | None]:
    """``reduce`` checked against the process group: ``None`` means global under an initialised
    group of more than one rank, local otherwise; global without a group is refused."""
    group = current_group()
    if reduce is None:
        return (Reduce.GLOBAL if group is not None and group.world > 1 else Reduce.LOCAL), group
    try:
        mode = Reduce(str(reduce).strip().lower())
    except ValueError:
        raise ResvizError(f"reduce must be global or local, got {str(reduce)[:40]!r}") from None
    if mode is Reduce.GLOBAL and group is None:
        raise ResvizError("reduce='global' needs an initialised torch.distributed process group")
    return mode, group


def local_part(t: Tensor) -> tuple[Tensor, Combine]:
    """The part of ``t`` this rank holds, and how its norm combines: a ``DTensor`` sharded across
    the ranks (FSDP2's parameters and gradients) gives its local shard, whose norms combine as
    slices of one tensor; anything else is whole on every rank (DDP replicates it). Read by duck
    typing, so the monitor does not import ``torch.distributed.tensor``."""
    to_local = getattr(t, "to_local", None)
    placements = getattr(t, "placements", None)
    if to_local is None or placements is None:
        return t, Combine.SAME
    sharded = any(p.is_shard() for p in placements)
    return to_local(), Combine.NORM if sharded else Combine.SAME


def gather_rows(values: Tensor) -> Tensor:
    """Every rank's ``values`` (a 1-D float64 tensor) as the rows of one tensor, in rank order.

    One-line :class:`ResvizError` when the ranks hold different numbers of values (they recorded
    different steps) or a collective fails, its timeout included: never a hang past the process
    group's timeout, never mixed numbers.
    """
    world = dist.get_world_size()
    try:
        size = torch.tensor([values.numel()], dtype=torch.int64, device=values.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        counts = [int(s) for s in sizes]
        if len(set(counts)) > 1:
            raise ResvizError(
                f"the ranks recorded different numbers of statistics ({', '.join(map(str, counts))} on ranks "
                f"0..{world - 1}): every rank must run the same monitored steps"
            )
        rows = [torch.empty_like(values) for _ in range(world)]
        dist.all_gather(rows, values)
    except ResvizError:
        raise
    except RuntimeError as exc:
        raise ResvizError(
            f"combining statistics across ranks failed (every rank must read the series at the same point): "
            f"{one_line(exc)[:300]}"
        ) from None
    return torch.stack(rows)


def combine(rows: Tensor, kinds: list[Combine] | Tensor) -> Tensor:
    """One value per column of ``rows`` (ranks x values), each combined by its kind (a list of
    :class:`Combine`, or their codes, indices into ``_KINDS``, as an integer tensor)."""
    column_codes = (kinds if isinstance(kinds, Tensor) else codes(kinds)).to(rows.device)
    out = torch.empty(rows.shape[1], dtype=rows.dtype, device=rows.device)
    for code, kind in enumerate(_KINDS):
        cols = (column_codes == code).nonzero().flatten()
        if cols.numel():
            out[cols] = _COMBINE[kind](rows[:, cols])
    return out


_COMBINE = {
    Combine.SUM: lambda r: r.sum(0),
    Combine.NORM: lambda r: r.square().sum(0).sqrt(),
    Combine.SAME: lambda r: r[0],
    Combine.MAX: lambda r: r.amax(0),
    Combine.MIN: lambda r: r.amin(0),
}


_KINDS = tuple(Combine)


def codes(kinds: list[Combine]) -> Tensor:
    """The integer codes of ``kinds`` that :func:`combine` reads."""
    return torch.tensor([_KINDS.index(k) for k in kinds], dtype=torch.long)


class GlobalTransfer(HostTransfer):
    """A :class:`HostTransfer` whose values are combined across the ranks before the one copy
    to the host: each slot has a :class:`Combine` kind."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[Combine] = []
        self._block_codes: list[Tensor] = []

    def put(self, t: Tensor, kind: Combine = Combine.SAME) -> int:
        slot = super().put(t)
        if slot == len(self.kinds):
            self.kinds.append(kind)
        return slot

    def put_rows(self, rows: Tensor, kinds: list[Combine]) -> int:
        """A ``(n, len(kinds))`` tensor whose column ``j`` combines by ``kinds[j]``; the block
        number for :meth:`offset`."""
        self._block_codes.append(codes(kinds).repeat(rows.shape[0]))
        return super().put_block(rows)

    def put_block(self, t: Tensor, kind: Combine = Combine.SAME) -> int:
        self._block_codes.append(torch.full((t.numel(),), _KINDS.index(kind), dtype=torch.long))
        return super().put_block(t)

    def fetch(self, tail: Tensor | None = None) -> list[float]:
        if tail is not None:
            raise ValueError("a GlobalTransfer takes no tail")
        parts = [torch.stack(self._scalars).double()] if self._scalars else []
        parts.extend(b.double() for b in self._blocks)
        local = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
        kinds = torch.cat([codes(self.kinds), *self._block_codes])
        return combine(gather_rows(local), kinds).cpu().tolist()


__all__ = [
    "Combine", "GlobalTransfer", "Group", "Reduce", "codes", "combine", "current_group", "gather_rows", "local_part",
    "resolve_reduce",
]
