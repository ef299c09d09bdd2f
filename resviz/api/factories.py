"""Bring your own model: ``package.module:factory``, ``path/to/file.py:factory``,
``torchvision:resnet50`` and ``timm:convnext_atto`` name a function that returns an ``nn.Module``.

The function is imported and called with no arguments, once per :func:`load_factory` call; counting
a model (:func:`resviz.api.summaries.factory_summary`) may call it up to three times (on the meta
device, with only its weights there, for real) and a comparison once more per run, so a factory's
side effects repeat. Library models are built without downloading weights
(``torchvision.models.get_model(name, weights=None)``, ``timm.create_model(name, pretrained=False)``).
This imports and runs the user's code, so only the command line and the dashboard's launch option
take such a name, never a URL. Every failure
(a module that does not import, a file with a syntax error, a missing factory, one that raises or
returns something other than a module) is one line naming the target.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from resviz.errors import ResvizError, clip, clip_path, one_line, quote

LIBRARIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "torchvision": ("torchvision.models", "get_model", {"weights": None}),
    "timm": ("timm", "create_model", {"pretrained": False}),
}
"""Libraries whose models are named ``library:model``: the module, its builder, and the arguments
that keep it from downloading weights."""


def is_factory(target: object) -> bool:
    """Whether ``target`` names a model factory (``left:right``, neither side empty; not a
    Windows drive like ``C:\\...``)."""
    if not isinstance(target, str) or ":" not in target:
        return False
    left, _, right = target.strip().rpartition(":")
    return bool(left) and bool(right) and not (len(left) == 1 and left.isalpha()) and " " not in right


def load_factory(target: str) -> nn.Module:
    """Build the model ``target`` names (see the module docstring)."""
    return find_factory(target)()


def find_factory(target: str) -> Callable[[], nn.Module]:
    """Import what ``target`` names and return a function that builds its model anew at each call.
    The imports happen here, so that a caller may build under a device context (``torch.device
    ("meta")``) that the imported modules' own top-level code never sees."""
    left, _, right = target.strip().rpartition(":")
    if left in LIBRARIES:
        where, builder, kwargs = LIBRARIES[left]
        library_builder = getattr(_import(where, target), builder)
        return lambda: _built(library_builder, target, (right,), kwargs)
    module = _from_file(Path(left), target) if left.endswith(".py") else _import(left, target)
    factory = getattr(module, right, None)
    if factory is None:
        raise ResvizError(f"{quote(target)}: {clip(left)} has no {quote(right)}")
    if not callable(factory):
        raise ResvizError(f"{quote(target)}: {quote(right)} is a {type(factory).__name__}, not a function or class")
    return lambda: _built(factory, target, ())


def _import(name: str, target: str) -> Any:
    """Import ``name`` as ``python -m`` would: the working folder is searched first (the ``resviz``
    command's own folder is not), and stays on the path for the imports the module makes later."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an ImportError, or anything the module raises (SystemExit too)
        raise ResvizError(f"{quote(target)}: cannot import {clip(name)}: {one_line(exc)[:200]}") from None


def _from_file(path: Path, target: str) -> Any:
    if not path.is_file():
        raise ResvizError(f"{quote(target)}: no such file {clip_path(path)}")
    name = f"resviz_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ResvizError(f"{quote(target)}: cannot load {clip_path(path)} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise ResvizError(f"{quote(target)}: syntax error in {clip_path(path)} line {exc.lineno}: {exc.msg}") from None
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:
        sys.modules.pop(name, None)
        raise ResvizError(f"{quote(target)}: running {clip_path(path)} failed: {one_line(exc)[:200]}") from None
    return module


def _built(factory: Any, target: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> nn.Module:
    try:
        model = factory(*args, **(kwargs or {}))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a factory must not end the process silently
        raise ResvizError(f"{quote(target)} raised {type(exc).__name__}: {one_line(exc)[:200]}") from None
    if not isinstance(model, nn.Module):
        raise ResvizError(f"{quote(target)} returned {clip(type(model).__name__)}, not an nn.Module")
    return model


__all__ = ["LIBRARIES", "find_factory", "is_factory", "load_factory"]
