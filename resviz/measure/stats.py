"""On-device activation statistics, batched, with one transfer to the host at the end.

Why this shape: a hook that calls ``.item()`` waits for the GPU at every layer, and per-layer
reductions launch several tiny kernels each; both multiply the cost of a training step
(bench/gpu.py measures resviz's own cost). Here hooks only queue tensors; :meth:`LayerStatsBuffer.flush`
reduces a group of queued outputs with batched kernels (``torch._foreach_norm``) where PyTorch has
them, stacks every per-layer number into one small row on the device, and
:meth:`LayerStatsBuffer.device_rows` hands all rows over for a single transfer to the host.

On CPU (float32) the reductions are memory-bound, so the cost is the number of passes over the
activations. Three things keep it down (measurements in bench/RESULTS.md, section Tracer): each
output is reduced in cache-sized chunks that get every reduction while resident (:func:`_rows_cpu`);
a ReLU's min and max follow from its input's; and the sums of a training-mode BatchNorm's input and
output follow from the batch statistics autograd already saved (:func:`batchnorm_moments`).
That last one, the batched norms and the reuse of recorded rows read private PyTorch internals,
all through :mod:`resviz.measure.fastpaths`, whose switch falls back to ordinary reductions.

Exact per layer: sum (mean), L2 norm (RMS, std), min, max, count of exact zeros, element count.
NaN and Inf make the sum or the norm non-finite, so they are detected for free. Their exact
counts come either from a second, forward-only pass that runs only when something was
non-finite (:func:`count_nonfinite`, the tracer's way), or, where no second pass is possible
(the monitor, inside the user's training step), from the buffer itself
(``LayerStatsBuffer(count_nonfinite=True)``): on the CPU path only the chunks whose partial
results are non-finite are counted (reading a CPU number costs no device sync), elsewhere every
layer gets two more reductions. The histogram has fixed edges (no data-dependent range, which would
need a device sync) and is taken over a systematic sample of at most :data:`HIST_SAMPLE` values,
because a full-tensor ``histc`` would cost a large share of a forward pass on a CPU.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from resviz.measure import fastpaths

HIST_LO, HIST_HI, HIST_BINS = -6.0, 6.0, 48
"""Fixed histogram range: BatchNorm outputs are near N(0, 1); values outside land in the end bins."""
HIST_EDGES: tuple[float, ...] = tuple(
    HIST_LO + i * (HIST_HI - HIST_LO) / HIST_BINS for i in range(HIST_BINS + 1)
)
HIST_SAMPLE = 8192
"""At most this many values per layer go into the histogram (every k-th in memory order)."""

_HEAD = 7  # sum, norm, min, max, nonzero, NaN count, Inf count (the element count is known on the host)
ROW = _HEAD + HIST_BINS


def flat(y: Tensor) -> Tensor:
    """All elements of ``y`` as a 1-D view in memory order (no copy for contiguous or channels_last)."""
    if y.is_contiguous():
        return y.view(-1)
    if y.dim() == 4 and y.is_contiguous(memory_format=torch.channels_last):
        return y.permute(0, 2, 3, 1).reshape(-1)
    return y.reshape(-1)


def sample(v: Tensor, k: int = HIST_SAMPLE) -> Tensor:
    """Every ``ceil(n / k)``-th value of a 1-D tensor (a strided view, no copy)."""
    step = max(1, math.ceil(v.numel() / k))
    return v[::step]


def norms(tensors: list[Tensor]) -> list[Tensor]:
    """L2 norms as float32 0-d tensors, one batched kernel family for the whole list."""
    if not tensors:
        return []
    if tensors[0].device.type == "cpu" and all(t.dtype == torch.float32 for t in tensors):
        # BLAS sdot on a flat view: faster than the generic norm on CPU (bench/cpu_kernels.py).
        return [torch.dot(v, v).sqrt() for v in map(flat, tensors)]
    foreach = fastpaths.foreach_norm()
    if foreach is not None and not any(t.dtype == torch.float64 for t in tensors):
        return list(foreach(tensors, 2, dtype=torch.float32))
    return [_norm32(t) for t in tensors]


def _norm32(t: Tensor) -> Tensor:
    """One L2 norm as float32; a float64 tensor is reduced in float64 (reduction dtypes may only
    widen) and the result narrowed."""
    if t.dtype == torch.float64:
        return torch.linalg.vector_norm(t).float()
    return torch.linalg.vector_norm(t, dtype=torch.float32)


def _nonzero(v: Tensor) -> Tensor:
    """Count of non-zero values. On CPU, ``dot(sign(v), sign(v))`` is much faster than
    ``count_nonzero`` (one vectorised pass plus BLAS; bench/cpu_kernels.py); float32 keeps it exact
    to 2**24 values, and beyond that the fraction is still right to 1e-7."""
    if v.device.type == "cpu" and v.dtype == torch.float32:
        s = torch.sign(v)
        return torch.dot(s, s)
    return torch.count_nonzero(v)


def _hist(v: Tensor) -> Tensor:
    s = sample(v).float().clamp(HIST_LO, HIST_HI)
    return torch.histc(s, HIST_BINS, HIST_LO, HIST_HI)


def _head(v: Tensor, norm: Tensor, nonfinite: bool) -> Tensor:
    lo, hi = torch.aminmax(v)
    nnz = _nonzero(v)
    bad = count_nonfinite(v).float() if nonfinite else torch.zeros(2, device=v.device)
    return torch.cat([torch.stack([v.sum(dtype=torch.float32), norm, lo.float(), hi.float(), nnz.float()]), bad])


CHUNK = 1 << 17
"""Elements per chunk of the CPU float32 path: 512 KiB, so a chunk read once from memory stays in
the L2 cache for the other four reductions (faster than whole-tensor passes on activations of
several megabytes, bench/cpu_kernels.py)."""

_Key = tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype]


def _key(t: Tensor) -> _Key:
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)


def _fast(y: Tensor) -> bool:
    return y.device.type == "cpu" and y.dtype == torch.float32


def _rows_cpu(
    flats: list[Tensor], skip_minmax: list[bool], moments: list[Tensor | None], nonfinite: bool = False,
) -> Tensor:
    """``(layers, ROW)`` rows of CPU float32 tensors, reduced chunk by chunk.

    Each chunk gets all five reductions and gives up its histogram sample while it is in cache
    (a strided sample taken from a whole multi-megabyte tensor costs one cache miss per value, as
    much as a full pass). Partial results land in one preallocated tensor (``out=``) and are
    combined per layer by three indexed reductions. ``skip_minmax`` marks layers whose min and max
    are derived elsewhere (left as NaN here); ``moments`` gives ``[sum, sum of squares]`` where they
    are already known (see :func:`batchnorm_moments`), and those two passes are skipped.
    With ``nonfinite``, a chunk whose partial results are not all finite gets its NaN and Inf
    counted (:func:`_count_chunk`).
    """
    chunks = [v.split(CHUNK) for v in flats]
    steps = [max(1, math.ceil(v.numel() / HIST_SAMPLE)) for v in flats]
    sizes = [math.ceil(v.numel() / k) for v, k in zip(flats, steps, strict=True)]
    seg = [i for i, cs in enumerate(chunks) for _ in cs]
    part = torch.zeros(len(seg), _HEAD)
    part[:, 2:4] = math.nan
    samples = torch.empty(sum(sizes))
    scratch = torch.empty(min(CHUNK, max(v.numel() for v in flats)))
    j = at = 0
    for cs, skip, known, step in zip(chunks, skip_minmax, moments, steps, strict=True):
        offset = 0
        for c in cs:
            p = part[j]
            j += 1
            if known is None:
                torch.sum(c, dim=0, out=p[0])
                torch.dot(c, c, out=p[1])
            if not skip:
                torch.aminmax(c, out=(p[2], p[3]))
            s = scratch[:c.numel()]
            torch.sign(c, out=s)
            torch.dot(s, s, out=p[4])  # count of non-zeros, exact below 2**24 per chunk
            if nonfinite:
                _count_chunk(c, p, known is None, skip)
            picked = c[(-offset) % step::step]  # the chunk's share of v[::step]
            samples[at:at + picked.numel()].copy_(picked)
            at += picked.numel()
            offset += c.numel()
    index = torch.tensor(seg)
    n = len(flats)
    head = torch.zeros(n, _HEAD).index_add_(0, index, part)
    given = [i for i, m in enumerate(moments) if m is not None]
    if given:
        head[given, :2] = torch.stack([m for m in moments if m is not None])
    head[:, 1].sqrt_()
    head[:, 2] = torch.full((n,), math.inf).scatter_reduce_(0, index, part[:, 2], "amin")
    head[:, 3] = torch.full((n,), -math.inf).scatter_reduce_(0, index, part[:, 3], "amax")
    samples.clamp_(HIST_LO, HIST_HI)
    hists = torch.stack([
        torch.histc(h, HIST_BINS, HIST_LO, HIST_HI) for h in samples.split(sizes)
    ])
    return torch.cat([head, hists], dim=1)


def _count_chunk(c: Tensor, p: Tensor, summed: bool, skipped: bool) -> None:
    """NaN and Inf counts of one CPU chunk into ``p[5:7]``, when its partial results show any.

    Sum and sum of squares, or min and max, each turn non-finite with a NaN or an Inf in the chunk;
    a chunk that has neither (a derived ReLU whose sums came from BatchNorm) is checked directly."""
    seen = p[0:2] if summed else (p[2:4] if not skipped else None)
    if seen is not None and bool(torch.isfinite(seen).all()):
        return
    if seen is None and bool(torch.isfinite(c).all()):
        return
    p[5:7] = count_nonfinite(c).float()


class LayerStatsBuffer:
    """Queue of layer outputs (``add``), reduced in groups (``flush``), read once (``device_rows``).

    ``find`` maps a live tensor back to the row of the recorded output it is (same memory and
    geometry), so other measurements can reuse a row instead of reducing the tensor again. A ReLU
    added with ``relu_of`` (its recorded input) skips its own min/max pass: ReLU is monotone, so
    ``min(relu(x)) = max(min(x), 0)`` and ``max(relu(x)) = max(max(x), 0)``, exactly.
    """

    def __init__(self, count_nonfinite: bool = False) -> None:
        self.count_nonfinite = count_nonfinite
        self.names: list[str] = []
        self.numels: list[int] = []
        self._pending: list[tuple[str, Tensor, int | None, int | None]] = []
        self._moments: dict[int, Tensor] = {}  # row -> [sum, sum of squares], known without a pass
        self._rows: list[Tensor] = []
        self._index: dict[_Key, tuple[int, weakref.ref[Tensor], int]] = {}
        self._derived: list[tuple[int, int]] = []  # (relu row, input row)
        self._copies: list[tuple[int, int]] = []  # (row, the earlier row of the same tensor)
        self._derived_rows: set[int] = set()

    def __len__(self) -> int:
        return len(self.names) + len(self._pending)

    def find(self, t: Tensor) -> int | None:
        """Row of the recorded output that ``t`` is, or None.

        Safe against reused memory and in-place edits: the recorded tensor must still be alive
        (two live tensors at one address with one geometry hold the same values) and its version
        counter unchanged since it was recorded. Always None with the fast paths off
        (:func:`~resviz.measure.fastpaths.tensor_version`): then nothing is reused.
        """
        entry = self._index.get(_key(t))
        if entry is None:
            return None
        row, ref, version = entry
        return row if ref() is not None and fastpaths.tensor_version(t) == version else None

    def give_moments(self, row: int, moments: Tensor) -> None:
        """Record ``[sum, sum of squares]`` of a row not reduced yet (ignored once it has been)."""
        if row >= len(self.names):
            self._moments[row] = moments

    def add(self, name: str, y: Tensor, relu_of: Tensor | None = None) -> None:
        row = len(self)
        same = self.find(y)  # an output recorded already (``nn.Identity`` returns its input): copy its row
        if same is not None:
            self._pending.append((name, y.detach(), None, same))
            return
        src = self.find(relu_of) if relu_of is not None and _fast(y) else None
        if src is not None and src not in self._derived_rows:
            self._derived.append((row, src))
            self._derived_rows.add(row)
        else:
            src = None
        version = fastpaths.tensor_version(y)
        if version is not None:
            self._index[_key(y)] = (row, weakref.ref(y), version)
        self._pending.append((name, y.detach(), src, None))

    def flush(self) -> None:
        if not self._pending:
            return
        names, ys, srcs, sames = zip(*self._pending, strict=True)
        self._pending.clear()
        first = len(self.names)
        known = [self._moments.pop(first + i, None) for i in range(len(ys))]
        todo = [i for i, s in enumerate(sames) if s is None]
        rows = self._reduce([ys[i] for i in todo], [srcs[i] for i in todo], [known[i] for i in todo])
        if len(todo) < len(ys):  # copies of rows recorded before: placeholders, filled in device_rows
            full = torch.zeros(len(ys), ROW, device=ys[0].device)
            if todo:
                full[todo] = rows
            rows = full
            self._copies.extend((first + i, s) for i, s in enumerate(sames) if s is not None)
        self.names.extend(names)
        self.numels.extend(y.numel() for y in ys)
        self._rows.append(rows)

    def _reduce(self, ys: list[Tensor], srcs: list[int | None], known: list[Tensor | None]) -> Tensor:
        if not ys:
            return torch.zeros(0, ROW)
        flats = [flat(y) for y in ys]
        if all(_fast(y) for y in ys):
            return _rows_cpu(flats, [s is not None for s in srcs], known, self.count_nonfinite)
        heads = torch.stack([_head(v, n, self.count_nonfinite) for v, n in zip(flats, norms(flats), strict=True)])
        return torch.cat([heads, torch.stack([_hist(v) for v in flats])], dim=1)

    def device_rows(self) -> Tensor | None:
        """All rows as one ``(layers, ROW)`` float32 tensor, still on the device."""
        self.flush()
        if not self._rows:
            return None
        rows = torch.cat(self._rows) if len(self._rows) > 1 else self._rows[0]
        if self._copies:  # in row order, as a copy may be of a derived row and a derived row of a copy
            steps = sorted([(d, s, True) for d, s in self._copies] + [(d, s, False) for d, s in self._derived])
            for dst, src, copy in steps:
                if copy:
                    rows[dst] = rows[src]
                else:
                    rows[dst, 2:4] = rows[src, 2:4].clamp(min=0.0)
        elif self._derived:
            dst_t, src_t = (torch.tensor(c, device=rows.device) for c in zip(*self._derived, strict=True))
            rows[dst_t, 2:4] = rows[src_t, 2:4].clamp(min=0.0)
        self._derived.clear()
        self._copies.clear()
        self._rows = [rows]
        return rows


def batchnorm_moments(module: nn.Module, x: Tensor, out: Tensor) -> tuple[Tensor, Tensor] | None:
    """``[sum, sum of squares]`` of a training-mode BatchNorm's input and of its output, from the
    per-channel batch mean and inverse std that autograd saved for the backward pass.

    With ``m`` values per channel, mean ``mu`` and ``invstd = 1 / sqrt(var + eps)`` (biased var):
    the input has sum ``m * sum(mu)`` and sum of squares ``m * sum(var + mu**2)``; the output
    ``gamma * (x - mu) * invstd + beta`` has sum ``m * sum(beta)`` (the centred term sums to zero)
    and sum of squares ``m * sum(gamma**2 * var * invstd**2 + beta**2)``. Equal to a direct
    reduction up to float rounding, and two passes over each tensor cheaper. None when the saved
    statistics are not there (eval mode, no grad, another backend, fast paths off: see
    :func:`~resviz.measure.fastpaths.batchnorm_saved`); the layers are then reduced directly.
    """
    if not (isinstance(module, nn.modules.batchnorm._BatchNorm) and x.dim() >= 2 and _fast(x) and _fast(out)):
        return None
    saved = fastpaths.batchnorm_saved(out)
    if saved is None:
        return None
    mu, invstd, eps = saved
    if mu.numel() != x.shape[1]:
        return None
    m = x.numel() / x.shape[1]
    var = (invstd.pow(-2) - eps).clamp(min=0.0)
    gamma = module.weight.detach() if module.weight is not None else torch.ones_like(mu)
    beta = module.bias.detach() if module.bias is not None else torch.zeros_like(mu)
    # var * invstd**2 == 1 - eps * invstd**2, without the cancellation of a tiny var
    out_sq = gamma.square() * (1.0 - eps * invstd.square()) + beta.square()
    sums = torch.stack([mu.sum(), (var + mu.square()).sum(), beta.sum(), out_sq.sum()]) * m
    return sums[:2], sums[2:]


@dataclass(frozen=True)
class Moments:
    """Host-side numbers of one layer, decoded from a row."""

    mean: float
    std: float
    min: float
    max: float
    rms: float
    zero_fraction: float
    finite: bool
    hist: tuple[int, ...]
    nan_count: int = 0
    inf_count: int = 0


def decode(row: list[float], numel: int) -> Moments:
    """Turn one transferred row into the statistics of :class:`~resviz.records.LayerStats`."""
    s, norm, lo, hi, nnz, nans, infs = row[:_HEAD]
    n = float(max(numel, 1))
    mean = s / n
    rms = norm / math.sqrt(n)
    # Unbiased variance from the two moments; clamp the tiny negatives rounding can leave.
    var = (norm * norm - n * mean * mean) / max(n - 1.0, 1.0)
    std = math.sqrt(var) if var > 0 else (0.0 if math.isfinite(var) else math.nan)
    finite = all(math.isfinite(v) for v in (s, norm, lo, hi))
    return Moments(
        mean=mean, std=std, min=lo, max=hi, rms=rms, zero_fraction=1.0 - nnz / n, finite=finite,
        hist=tuple(round(c) for c in row[_HEAD:]), nan_count=round(nans), inf_count=round(infs),
    )


def count_nonfinite(y: Tensor) -> Tensor:
    """``[nan_count, inf_count]`` on the device (used only by the second pass)."""
    return torch.stack([torch.isnan(y).sum(), torch.isinf(y).sum()])


__all__ = [
    "HIST_EDGES", "HIST_SAMPLE", "ROW", "LayerStatsBuffer", "Moments", "count_nonfinite",
    "decode", "flat", "norms", "sample",
]
