"""One copy to the host: device scalars are gathered while measuring and copied all at once.

Reading a number from a GPU waits for every kernel queued before it, so statistics stay on the
device until the end (README, "Tracing"): each scalar gets a slot in a :class:`HostTransfer`,
and :meth:`HostTransfer.fetch` stacks them into one tensor, copies it, and returns plain floats that
the slots index. The tracer and the monitor both use it.
"""

from __future__ import annotations

import torch
from torch import Tensor


class HostTransfer:
    """Scalars waiting for the one device-to-host copy; the same tensor gets the same slot."""

    def __init__(self) -> None:
        self._scalars: list[Tensor] = []
        self._slots: dict[int, int] = {}
        self._keep: list[Tensor] = []  # holds each put tensor, so that no id is reused while slots are open
        self._blocks: list[Tensor] = []

    def __len__(self) -> int:
        return len(self._scalars)

    def put(self, t: Tensor) -> int:
        """The slot of the 0-d (or one-element) tensor ``t`` in :meth:`fetch`'s result."""
        slot = self._slots.get(id(t))
        if slot is None:
            slot = self._slots[id(t)] = len(self._scalars)
            self._scalars.append(t.float().reshape(()))
            self._keep.append(t)
        return slot

    def put_all(self, tensors: list[Tensor]) -> list[int]:
        return [self.put(t) for t in tensors]

    def put_block(self, t: Tensor) -> int:
        """A whole tensor (a layer's rows, say) in one slot range; the number to pass to
        :meth:`offset` once fetched."""
        self._blocks.append(t.reshape(-1))
        return len(self._blocks) - 1

    def offset(self, block: int) -> int:
        """Where the values of block ``block`` start in :meth:`fetch`'s result."""
        return len(self._scalars) + sum(b.numel() for b in self._blocks[:block])

    def fetch(self, tail: Tensor | None = None) -> list[float]:
        """Every slot's value as a float, then every block's values, then those of ``tail``
        (flattened, starting after the blocks): one device-to-host transfer."""
        parts = [torch.stack(self._scalars)] if self._scalars else []
        parts.extend(b.float() for b in self._blocks)
        if tail is not None:
            parts.append(tail.float().reshape(-1))
        if not parts:
            return []
        return torch.cat(parts).cpu().tolist() if len(parts) > 1 else parts[0].cpu().tolist()


__all__ = ["HostTransfer"]
