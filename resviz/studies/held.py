"""A model held for one study and given back exactly as it was.

Studies run the user's model (forward passes in chosen modes, gated backward passes, lesions):
one measurement at a time (:mod:`resviz.measure.ownership`), and afterwards what the tracer puts
back is back (:class:`~resviz.measure.state.Saved`): every buffer (tensor and values), every
module's ``training`` flag, every parameter's ``.grad`` object and ``requires_grad``, and, when
asked, the ``inplace`` flags. Parameters are never written by the studies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn

from resviz.errors import ResvizError, one_line
from resviz.measure.ownership import Use, exclusive
from resviz.measure.state import saved
from resviz.records import shape_str


@contextmanager
def held(model: nn.Module, label: str, inplace: bool = False) -> Iterator[None]:
    """Hold ``model`` (see the module docstring); with ``inplace``, in-place operations are turned
    off meanwhile (hooks and gated gradients need out-of-place activations)."""
    with exclusive(model, Use.TRACE, label), saved(model, grads=True, inplace=inplace):
        yield


@contextmanager
def failures_in_one_line(label: str, shape: Sequence[int]) -> Iterator[None]:
    """A pass of ``label`` that fails on an input of ``shape`` as one :class:`ResvizError` line;
    resviz's own errors (a :class:`ValueError` too) pass as they are."""
    try:
        yield
    except ResvizError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ResvizError(f"{label} fails on input {shape_str(tuple(shape))}: {one_line(exc)}") from None


__all__ = ["failures_in_one_line", "held"]
