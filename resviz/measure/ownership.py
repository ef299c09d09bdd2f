"""One measurement of a model at a time.

A trace, a monitor, the static pass and the counter reconciliation all hook or run the model they
measure (the static pass also swaps its parameters for meta stand-ins while it runs). Two of them
on one model at once, from two threads (two dashboard sessions, a training thread and a trace) or
nested in one thread, would see each other's passes: a trace would record both forwards and
restore ``.grad`` under the other. So each claims every module of the model first, and a second
claim on any of them is refused at once with a one-line error. Refused, not queued: a dashboard
thread waiting for another session's trace would hold up the server.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from torch import nn

from resviz.errors import ResvizError


class Use(StrEnum):
    """What holds a model, as the refusal names it."""

    TRACE = "traced"
    MONITOR = "monitored"
    SUMMARY = "summarized"
    RECONCILE = "reconciled"


_lock = threading.Lock()
_held: weakref.WeakKeyDictionary[nn.Module, Use] = weakref.WeakKeyDictionary()


def claim(model: nn.Module, use: Use, label: str) -> list[nn.Module]:
    """Mark every module of ``model`` as held by ``use``; a one-line :class:`ResvizError` when any
    of them (the model, a part of it, or a model it is part of) is already held. Returns the
    modules to hand to :func:`release`."""
    modules = list(model.modules())
    with _lock:
        _refuse_if_held(modules, label)
        for m in modules:
            _held[m] = use
    return modules


def check_free(model: nn.Module, label: str) -> None:
    """The refusal of :func:`claim` without claiming: for a caller that reads the model (its
    parameters' device, say) before its measurement claims it, and must not read a model whose
    parameters another measurement has swapped out."""
    modules = list(model.modules())
    with _lock:
        _refuse_if_held(modules, label)


def _refuse_if_held(modules: list[nn.Module], label: str) -> None:
    for m in modules:
        busy = _held.get(m)
        if busy is not None:
            part = "" if m is modules[0] else " (a part of it)"
            raise ResvizError(
                f"{label}{part} is already being {busy.value}, in another thread or an enclosing "
                f"call: one measurement at a time per model; wait for it, or measure a copy "
                f"(copy.deepcopy)"
            )


def release(modules: list[nn.Module]) -> None:
    """Undo :func:`claim`."""
    with _lock:
        for m in modules:
            _held.pop(m, None)


@contextmanager
def exclusive(model: nn.Module, use: Use, label: str) -> Iterator[None]:
    """Hold ``model`` for the duration of the block (:func:`claim`, then :func:`release`)."""
    modules = claim(model, use, label)
    try:
        yield
    finally:
        release(modules)


def holder(model: nn.Module) -> Use | None:
    """What holds ``model`` now, if anything."""
    with _lock:
        return _held.get(model)


__all__ = ["Use", "check_free", "claim", "exclusive", "holder", "release"]
