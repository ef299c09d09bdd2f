"""Refuse a trace whose activations would not fit, before it runs.

A process that runs out of host memory is killed by the kernel without a message (the dashboard's
server with it), so surfaces check first: the meta-device summary's activation bytes at the trace
shape against the memory free on the device.
"""

from __future__ import annotations

import os

import torch

from resviz.errors import ResvizError
from resviz.records import Shape, shape_str

#: A trace is refused when the activations of its input would take more than this share of the
#: memory free on its device. A trace's peak memory is close to the summary's activation bytes
#: (bench/RESULTS.md, Tracer); the other half is left for autograd's buffers, the weights and
#: everything else running on the machine.
TRACE_MEMORY_SHARE = 0.5


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device``: what CUDA reports; for the CPU, Linux's ``MemAvailable`` (free
    memory plus the page cache it can drop), else the physical memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_trace_memory(model: str, shape: Shape, activation_bytes: int, device: torch.device) -> None:
    """One-line :class:`ResvizError` when ``activation_bytes`` exceed :data:`TRACE_MEMORY_SHARE`
    of the memory free on ``device``."""
    free = free_memory(device)
    if activation_bytes > TRACE_MEMORY_SHARE * free:
        raise ResvizError(
            f"a trace of {model} at {shape_str(shape)} needs about {activation_bytes / 2**30:.1f} GiB of "
            f"activations, more than {TRACE_MEMORY_SHARE:.0%} of the {free / 2**30:.1f} GiB free on "
            f"{device.type}: lower the batch or the input size"
        )
