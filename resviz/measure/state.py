"""What a measurement may change in a user's model, saved first and put back exactly after.

resviz runs the user's model for its own purposes (a traced pass, a study's forward and gated backward
passes, the real forward that finds the structure of a model the meta device cannot run), and the model
must come back as it was: every module's ``training`` flag; every buffer, both the tensor object each
module holds (a forward may assign a new one, as counters often do), whether it is persistent, and its
values (BatchNorm's running statistics); the parameters and submodules each module holds (a forward may
assign or add them); when asked, every parameter's ``.grad`` object and ``requires_grad``, and the ``inplace``
flags turned off for the measurement (an in-place ReLU would rewrite tensors the hooks watch).
Parameters themselves are never written. One record, :class:`Saved`, serves all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


def disable_inplace(model: nn.Module) -> list[nn.Module]:
    """Turn off ``inplace`` wherever it is on; returns those modules for :func:`enable_inplace`."""
    mods = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in mods:
        m.inplace = False  # type: ignore[assignment]
    return mods


def enable_inplace(mods: list[nn.Module]) -> None:
    for m in mods:
        m.inplace = True  # type: ignore[assignment]


@dataclass
class Saved:
    """A model's mutable state as it was when :meth:`of` was called (see the module docstring)."""

    modes: list[tuple[nn.Module, bool]]
    slots: list[tuple[nn.Module, dict[str, Tensor | None], set[str]]]
    """Each module's buffers and which of them are not persistent."""
    members: list[tuple[nn.Module, dict[str, nn.Parameter | None], dict[str, nn.Module | None]]]
    """Each module's parameters and submodules (a forward may assign or add them)."""
    values: list[tuple[Tensor, Tensor]]
    grads: list[tuple[nn.Parameter, Tensor | None, bool]] = field(default_factory=list)
    inplace: list[nn.Module] = field(default_factory=list)

    @classmethod
    def of(cls, model: nn.Module, grads: bool = False, inplace: bool = False) -> Saved:
        """Save ``model``'s modes and buffers, with ``grads`` its parameters' gradients and flags too;
        with ``inplace`` turn its in-place operations off until :meth:`restore`."""
        return cls(
            modes=[(m, m.training) for m in model.modules()],
            slots=[(m, dict(m._buffers), set(m._non_persistent_buffers_set)) for m in model.modules()],
            members=[(m, dict(m._parameters), dict(m._modules)) for m in model.modules()],
            values=[(b, b.detach().clone()) for b in model.buffers()],
            grads=[(p, p.grad, p.requires_grad) for p in model.parameters()] if grads else [],
            inplace=disable_inplace(model) if inplace else [],
        )

    @torch.no_grad()
    def restore_buffers(self) -> None:
        """Every module's own buffer tensors back in place (persistent or not, as they were), with
        the values they had."""
        for m, buffers, transient in self.slots:
            m._buffers.clear()
            m._buffers.update(buffers)
            m._non_persistent_buffers_set.clear()
            m._non_persistent_buffers_set.update(transient)
        for b, v in self.values:
            b.copy_(v)

    def restore(self) -> None:
        """Everything saved, as it was."""
        for m, params, children in self.members:
            m._parameters.clear()
            m._parameters.update(params)
            m._modules.clear()
            m._modules.update(children)
        self.restore_buffers()
        for m, mode in self.modes:
            m.training = mode
        for p, grad, req in self.grads:
            p.grad = grad
            p.requires_grad_(req)
        enable_inplace(self.inplace)
        self.inplace = []


@contextmanager
def saved(model: nn.Module, grads: bool = False, inplace: bool = False) -> Iterator[Saved]:
    """:meth:`Saved.of` on entry and :meth:`Saved.restore` on exit, also when the body raises."""
    state = Saved.of(model, grads, inplace)
    try:
        yield state
    finally:
        state.restore()


def device_of(model: nn.Module) -> torch.device:
    """Where ``model`` lives: the device of its first parameter or buffer (the CPU for neither)."""
    return next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))


def cuda_indices(model: nn.Module) -> list[int]:
    """The CUDA devices ``model``'s tensors are on (whose random state a real pass forks)."""
    return sorted({t.device.index or 0 for t in (*model.parameters(), *model.buffers()) if t.device.type == "cuda"})


__all__ = ["Saved", "cuda_indices", "device_of", "disable_inplace", "enable_inplace", "saved"]
