"""Models under ``torch.compile``: the module the user wrote, and eager passes to measure it.

``torch.compile(model)`` returns an ``OptimizedModule`` whose ``_orig_mod`` is the user's module.
A compiled graph does not run Python hooks as Python: hooks present when dynamo traces are baked
into the graph (and a hook that changes what it does forces a recompilation each time), hooks it
does not see are skipped. So a measured pass runs eagerly, with hooks on the original module, under
the compiler stance ``force_eager``; every other pass keeps the compiled graph. An eager pass
computes the same function as the compiled graph, so its numbers equal eager ones to float
tolerance.

The stance is read when a compiled function is entered (``torch._dynamo.eval_frame``): it has to
be set before that call, never from code running inside a compiled region, where PyTorch refuses
it. Nothing here imports ``torch._dynamo`` unless a measurement needs it: without it loaded,
nothing can have been compiled.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import nn

_F = TypeVar("_F", bound=Callable[..., Any])


def _optimized_type() -> type | None:
    """``OptimizedModule`` when ``torch.compile`` has been loaded in this process, else ``None``."""
    frames = sys.modules.get("torch._dynamo.eval_frame")
    found = getattr(frames, "OptimizedModule", None)
    return found if isinstance(found, type) else None


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` is what ``torch.compile(module)`` returned."""
    kind = _optimized_type()
    return kind is not None and isinstance(model, kind)


def original(model: nn.Module) -> nn.Module:
    """The module the user wrote: ``model`` itself, or the one a compiled wrapper holds (through
    any number of wrappers). Hooks, names, labels and specs are read from it."""
    while is_compiled(model):
        inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            break
        model = inner
    return model


def dynamo_loaded() -> bool:
    """Whether anything in this process can be compiled (``torch.compile`` was imported)."""
    return "torch._dynamo" in sys.modules


@contextmanager
def eager() -> Iterator[None]:
    """Run the block with every compiled function running its original Python code
    (``torch.compiler.set_stance("force_eager")``), and restore the stance afterwards. A no-op
    when ``torch.compile`` was never loaded."""
    if not dynamo_loaded():
        yield
        return
    with torch.compiler.set_stance("force_eager"):
        yield


def _stance_refused() -> bool:
    """Whether PyTorch refuses a stance change here, as it does inside a compiled call."""
    try:
        with torch.compiler.set_stance("force_eager"):
            pass
    except RuntimeError:
        return True
    return False


def compiled_code_probe() -> Callable[[], bool]:
    """A function telling whether it is called inside the call of a compiled function (dynamo
    may run parts of a compiled call as plain Python, hooks included), where the stance cannot
    change. Dynamo skips its own frame without leaving the compiled call
    (``torch.compiler.disable(recursive=False)``), so it sees what its caller sees; asked the
    public way, with a stance change undone at once. Loads ``torch.compile``."""
    return torch.compiler.disable(_stance_refused, recursive=False)


def outside_graphs(fn: _F) -> _F:
    """``fn`` as a hook that a compiled graph does not take in: dynamo breaks the graph there and
    calls it as plain Python, every call (``torch.compiler.disable``). For hooks on a module the
    user may compile after they were attached. Inside ``fn`` the stance may be changed again."""
    return torch.compiler.disable(fn)


class EagerSwitch:
    """The ``force_eager`` stance held across calls: :meth:`set` turns it on or off, restoring the
    stance that was there before it was turned on."""

    def __init__(self) -> None:
        self._held: Any = None

    @property
    def on(self) -> bool:
        return self._held is not None

    def set(self, on: bool) -> None:
        """Hold ``force_eager`` (``on``) or give it back; nothing when already so."""
        if on and self._held is None:
            self._held = torch.compiler.set_stance("force_eager")  # set now, undone by __exit__
        elif not on and self._held is not None:
            held, self._held = self._held, None
            held.__exit__(None, None, None)


__all__ = ["EagerSwitch", "compiled_code_probe", "dynamo_loaded", "eager", "is_compiled", "original", "outside_graphs"]
