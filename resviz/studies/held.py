"""A model held for one study and given back exactly as it was.

Studies run the user's model (forward passes in chosen modes, gated backward passes, lesions):
one measurement at a time (:mod:`resviz.measure.ownership`), and afterwards what the tracer puts
back is back (:class:`~resviz.measure.state.Saved`): every buffer (tensor and values), every
module's ``training`` flag, every parameter's ``.grad`` object and ``requires_grad``, and, when
asked, the ``inplace`` flags. Parameters are never written by the studies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from resviz.measure.ownership import Use, exclusive
from resviz.measure.state import saved


@contextmanager
def held(model: nn.Module, label: str, inplace: bool = False) -> Iterator[None]:
    """Hold ``model`` (see the module docstring); with ``inplace``, in-place operations are turned
    off meanwhile (hooks and gated gradients need out-of-place activations)."""
    with exclusive(model, Use.TRACE, label), saved(model, grads=True, inplace=inplace):
        yield


__all__ = ["held"]
