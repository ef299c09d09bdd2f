"""Every use of private PyTorch internals in resviz, behind one switch.

The measuring code reads a few things PyTorch does not promise to keep: what autograd saved for
BatchNorm's backward, the engine's end-of-backward callback queue, ``torch._foreach_norm`` and a
tensor's version counter. They make tracing and monitoring cheaper (bench/RESULTS.md). Each has a
public fallback giving the same numbers to float tolerance, and this module is the one place that
chooses between them:

* :func:`batchnorm_saved`: a training-mode BatchNorm's batch mean and inverse std from its
  ``grad_fn``, so the tracer derives the sums of the layer's input and output instead of reducing
  them again. Fallback (None): the ordinary reductions every other layer gets.
* :func:`engine_callback`: queues a function to run once the current backward pass has finished
  (every ``.grad`` accumulated), where the monitor takes parameter and gradient norms. Fallback
  (None): the monitor takes each gradient's norm in a public post-accumulate-grad hook.
* :func:`foreach_norm`: one batched kernel family for many L2 norms. Fallback (None): one
  ``torch.linalg.vector_norm`` per tensor.
* :func:`tensor_version`: lets a tensor be matched to a recorded layer output (it was not edited in
  place since), so its norm or min/max are reused. Fallback (None): nothing is matched; every
  number is reduced from the tensor itself.

The switch is on by default. ``RESVIZ_FAST_PATHS=0`` (or ``false``/``no``/``off``) in the
environment turns it off for the process; it is read once, at import. :func:`set_enabled` and the
context manager :func:`fast_paths` change it at run time (tests compare both settings). It is one
process-wide flag, not per thread. With the switch on, a private attribute that this version of
PyTorch lacks gives the fallback too, never an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

ENV_VAR = "RESVIZ_FAST_PATHS"
"""Environment variable read at import: ``0``, ``false``, ``no`` or ``off`` turns the fast paths off."""

_OFF = frozenset({"0", "false", "no", "off"})


def parse(value: str | None) -> bool:
    """Whether an :data:`ENV_VAR` value leaves the fast paths on (unset or empty: on)."""
    return value is None or value.strip().lower() not in _OFF


_enabled = parse(os.environ.get(ENV_VAR))


def enabled() -> bool:
    """Whether the fast paths are on (they may still fall back where PyTorch lacks an internal)."""
    return _enabled


def set_enabled(on: bool) -> bool:
    """Turn the fast paths on or off for the whole process; returns the previous setting."""
    global _enabled
    before, _enabled = _enabled, bool(on)
    return before


@contextmanager
def fast_paths(on: bool) -> Iterator[None]:
    """Run a block with the fast paths on or off, restoring the previous setting afterwards."""
    before = set_enabled(on)
    try:
        yield
    finally:
        set_enabled(before)


def batchnorm_saved(out: Tensor) -> tuple[Tensor, Tensor, float] | None:
    """``(batch mean, inverse std, eps)`` per channel that autograd saved when the training-mode
    BatchNorm producing ``out`` ran, or None (switch off, eval mode, no grad, another backend or
    a PyTorch without these attributes)."""
    if not _enabled:
        return None
    gf = out.grad_fn
    if type(gf).__name__ != "NativeBatchNormBackward0" or not getattr(gf, "_saved_training", False):
        return None
    mean = getattr(gf, "_saved_result1", None)
    invstd = getattr(gf, "_saved_result2", None)
    eps = getattr(gf, "_saved_eps", None)
    if not isinstance(mean, Tensor) or not isinstance(invstd, Tensor) or eps is None:
        return None
    return mean, invstd, float(eps)


def engine_callback() -> Callable[[Callable[[], None]], None] | None:
    """The autograd engine's ``queue_callback`` (call it from inside a backward pass: the function
    runs when that pass ends), or None."""
    if not _enabled:
        return None
    engine = getattr(torch.autograd.Variable, "_execution_engine", None)
    queue: Callable[[Callable[[], None]], None] | None = getattr(engine, "queue_callback", None)
    return queue


def foreach_norm() -> Callable[..., Any] | None:
    """``torch._foreach_norm`` or None."""
    return getattr(torch, "_foreach_norm", None) if _enabled else None


def tensor_version(t: Tensor) -> int | None:
    """The version counter of ``t`` (bumped by every in-place edit), or None."""
    return getattr(t, "_version", None) if _enabled else None


__all__ = [
    "ENV_VAR", "batchnorm_saved", "enabled", "engine_callback", "fast_paths", "foreach_norm", "parse",
    "set_enabled", "tensor_version",
]
