"""A model held for one study and given back exactly as it was.

Studies run the user's model (forward passes in chosen modes, gated backward passes, lesions):
one measurement at a time (:mod:`resviz.measure.ownership`), and afterwards every buffer's values
(BatchNorm running statistics), every module's ``training`` flag, every parameter's ``.grad``
object and ``requires_grad``, and, when asked, the ``inplace`` flags are what they were.
Parameters are never written by the studies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from resviz.measure.ownership import Use, exclusive
from resviz.measure.tracer import disable_inplace, enable_inplace


@contextmanager
def held(model: nn.Module, label: str, inplace: bool = False) -> Iterator[None]:
    """Hold ``model`` (see the module docstring); with ``inplace``, in-place operations are turned
    off meanwhile (hooks and gated gradients need out-of-place activations)."""
    with exclusive(model, Use.TRACE, label):
        buffers = [(b, b.detach().clone()) for b in model.buffers()]
        modes = [(m, m.training) for m in model.modules()]
        params = [(p, p.grad, p.requires_grad) for p in model.parameters()]
        flags = disable_inplace(model) if inplace else []
        try:
            yield
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            for m, mode in modes:
                m.training = mode
            for p, grad, req in params:
                p.grad = grad
                p.requires_grad_(req)
            enable_inplace(flags)


__all__ = ["held"]
