"""Refuse a pass that would not fit in memory, before anything is built or allocated.

A process that runs out of host memory is killed by the kernel without a message (the dashboard's
server with it), so :func:`resviz.api.trace` and :func:`resviz.api.compare` ask here first, with the
estimate of :mod:`resviz.measure.memory` (weights, gradients, optimizer state, activations, inputs
and the tracer's buffers). What is available is the least of three limits, any of which ends the
process: Linux's ``MemAvailable``, the cgroup's limit less its usage, and the address-space limit
(``ulimit -v``) less what the process has mapped; on a CUDA device, what CUDA reports free.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch

from resviz.errors import ResvizError
from resviz.measure.memory import MemoryNeed
from resviz.records import Shape, shape_str

MEMORY_MARGIN = 3 / 2
"""A pass is refused when its estimate times this exceeds the memory available, so an estimate may
take two thirds of it. The margin covers the spread of the estimate against measured peaks, low
end included, with room left for what the estimate does not see (bench/RESULTS.md, Memory
pre-flight, where the measured range and a run under ``ulimit -v`` that a smaller margin let fail
are recorded); at the high end of that range a pass is refused somewhat before it would fill the
memory, the price of never letting one fail."""
ARENA_BYTES = 64 * 2**20
"""Address space glibc reserves for each thread's malloc arena (64 MiB on 64-bit Linux): a pass
that starts PyTorch's worker threads maps this much per thread, resident or not, so it counts
against ``ulimit -v``."""
_UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a huge number near 2**63


class ProcFiles(NamedTuple):
    """Where the kernel's numbers are read (injectable, so tests can fake a machine)."""

    meminfo: str = "/proc/meminfo"
    cgroup: str = "/proc/self/cgroup"
    mountinfo: str = "/proc/self/mountinfo"
    status: str = "/proc/self/status"


PROC = ProcFiles()
"""This machine's files."""


class Available(NamedTuple):
    """Bytes available and the limit that sets them (``MemAvailable``, ``cgroup``, ``ulimit -v``, ``cuda``)."""

    bytes: int
    limit: str


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _field_kib(text: str | None, key: str) -> int | None:
    """A ``Key:   123 kB`` field of /proc/meminfo or /proc/self/status, in bytes."""
    for line in (text or "").splitlines():
        if line.startswith(key + ":"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else None
    return None


def _cgroup_dirs(files: ProcFiles) -> Iterator[tuple[Path, Path, str, str]]:
    """The memory cgroup directory of this process for each hierarchy (v2, v1), with the names of
    its limit and usage files; read from /proc/self/cgroup and the mounts in /proc/self/mountinfo."""
    mounts: dict[str, tuple[str, str]] = {}  # "v2"/"v1" -> (mount root, mount point)
    for line in (_read(files.mountinfo) or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            mounts.setdefault("v2", (fields[3], fields[4]))
        elif tail[0] == "cgroup" and "memory" in tail[2].split(","):
            mounts.setdefault("v1", (fields[3], fields[4]))
    for line in (_read(files.cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        kind = "v2" if parts[0] == "0" and parts[1] == "" else "v1" if "memory" in parts[1].split(",") else ""
        if kind not in mounts:
            continue
        root, point = mounts[kind]
        rel = os.path.relpath(parts[2], root) if parts[2].startswith(root) else parts[2].lstrip("/")
        names = ("memory.max", "memory.current") if kind == "v2" else ("memory.limit_in_bytes", "memory.usage_in_bytes")
        yield Path(point) / ("" if rel == "." else rel), Path(point), names[0], names[1]


def _inactive_file(cgroup_dir: Path) -> int:
    """Page cache the kernel reclaims before it kills (``inactive_file`` in ``memory.stat``): the
    cgroup's usage counts it, as ``docker stats`` leaves it out."""
    for line in (_read(cgroup_dir / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key in ("inactive_file", "total_inactive_file") and value.strip().isdigit():
            return int(value)
    return 0


def cgroup_available(files: ProcFiles = PROC) -> int | None:
    """The cgroup's memory limit less its usage (less the page cache it can drop), the least over
    the process's cgroup and its ancestors (a parent's limit binds its children); ``None`` without
    any limit."""
    best: int | None = None
    for leaf, top, limit_name, usage_name in _cgroup_dirs(files):
        d = leaf
        while True:
            limit, usage = _read(d / limit_name), _read(d / usage_name)
            if limit is not None and usage is not None and limit.strip().isdigit() and usage.strip().isdigit():
                cap = int(limit)
                if cap < _UNLIMITED:
                    left = max(cap - int(usage) + _inactive_file(d), 0)
                    best = left if best is None else min(best, left)
            if d == top or d.parent == d:
                break
            d = d.parent
    return best


def address_space_available(
    files: ProcFiles = PROC, limit: Callable[[], int] | None = None,
) -> int | None:
    """The address-space limit (``ulimit -v``, ``RLIMIT_AS``) less the process's ``VmSize`` and the
    arenas its worker threads may map (:data:`ARENA_BYTES`); ``None`` when unlimited. Every
    allocation maps address space, so this ends a process too."""
    soft = limit() if limit is not None else resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    used = _field_kib(_read(files.status), "VmSize") or 0
    return max(soft - used - ARENA_BYTES * torch.get_num_threads(), 0)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap_free() -> int:
    """Bytes this process has freed but glibc keeps for reuse (``mallinfo2().fordblks``); 0 where
    the C library has no ``mallinfo2``. A finished trace leaves its peak in the process (bench/RESULTS.md,
    Memory pre-flight): the next pass reuses it without asking the kernel, so it counts as available."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return 0
    fn.restype = _MallInfo2
    return int(fn().fordblks)


def available_memory(
    device: torch.device, files: ProcFiles = PROC, as_limit: Callable[[], int] | None = None,
    reusable: Callable[[], int] = heap_free,
) -> Available:
    """The memory a pass on ``device`` can still take: CUDA's free memory for a CUDA device; for the
    CPU, the least of ``MemAvailable`` (free memory plus the page cache the kernel can drop), the
    cgroup's limit less its usage and the address-space limit less ``VmSize``, plus what the process
    has freed and can reuse (``reusable``, :func:`heap_free`), which none of the three counts."""
    if device.type == "cuda":
        return Available(int(torch.cuda.mem_get_info(device)[0]), "cuda")
    found = [Available(b, name) for b, name in (
        (_field_kib(_read(files.meminfo), "MemAvailable"), "MemAvailable"),
        (cgroup_available(files), "cgroup limit"),
        (address_space_available(files, as_limit), "ulimit -v"),
    ) if b is not None]
    if not found:
        return Available(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical memory")
    least = min(found, key=lambda a: a.bytes)
    return least._replace(bytes=least.bytes + reusable())


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**29 else f"{n / 2**20:.0f} MiB"


def fits(need: int, avail: int) -> bool:
    return need * MEMORY_MARGIN <= avail


def largest_batch(need: MemoryNeed, avail: int) -> int:
    """The largest batch whose estimate fits with the margin (0 when not even one sample does)."""
    room = avail / MEMORY_MARGIN - need.fixed
    return max(int(room // max(need.per_sample, 1)), 0) if room > 0 else 0


def advice(need: MemoryNeed, avail: int, shape: Shape) -> str:
    """A smaller setting that fits: a batch computed from the per-sample part, else a smaller
    image (activations and a data set's images grow with its area), else a smaller model."""
    n = min(largest_batch(need, avail), need.batch - 1)
    if n >= 1:
        return f"lower the batch to {n} (input {shape_str((n, *shape[1:]))})"
    room = avail / MEMORY_MARGIN - need.model
    if room <= 0:
        return f"the model alone needs {gib(need.model)}: use a smaller model or free memory"
    scale = math.sqrt(room / max(need.per_sample + need.data, 1))
    side = [max(int(d * scale * 0.9) // 8 * 8, 8) for d in shape[2:]]
    return f"lower the batch to 1 and the input to about {shape_str((1, shape[1], *side))}"


def check_need(what: str, need: MemoryNeed, device: torch.device, shape: Shape) -> None:
    """One-line :class:`ResvizError` when ``need`` (with the margin) exceeds what ``device`` has
    available; the message names the estimate, its largest part, the limit and a setting that fits.
    On a CUDA device the inputs (a comparison's batches) stay in host memory and are checked there."""
    host = device.type == "cuda" and need.inputs + need.data > 0
    dev_need = need._replace(inputs=0, data=0) if host else need
    _refuse_unless_fits(what, dev_need, available_memory(device), device, shape)
    if host:
        cpu = torch.device("cpu")
        host_need = MemoryNeed(0, 0, 0, 0, need.inputs, 0, need.batch, need.data)
        _refuse_unless_fits(what, host_need, available_memory(cpu), cpu, shape)


def _refuse_unless_fits(what: str, need: MemoryNeed, avail: Available, device: torch.device, shape: Shape) -> None:
    if fits(need.total, avail.bytes):
        return
    part, size = need.largest()
    raise ResvizError(
        f"{what} at {shape_str(shape)} needs about {gib(need.total)} ({part} {gib(size)}), more than fits in "
        f"the {gib(avail.bytes)} available on {device.type} ({avail.limit}) with a {MEMORY_MARGIN - 1:.0%} margin: "
        f"{advice(need, avail.bytes, shape)}"
    )


__all__ = [
    "MEMORY_MARGIN",
    "PROC",
    "Available",
    "ProcFiles",
    "address_space_available",
    "advice",
    "available_memory",
    "cgroup_available",
    "check_need",
    "heap_free",
    "largest_batch",
]
