"""What a user names, resolved once for every surface: a preset name, a spec file, ``custom``
with overrides, a preset with per-model overrides (``resnet110@init=fixup``,
``resnet56@norm=none,init=rezero``), a :class:`~resviz.spec.ResNetSpec`, or their own ``nn.Module``.

Every surface (CLI, dashboard, Python) and every study goes through :func:`resolve_spec` or
:func:`resolve_model`, so a name is read, a spec validated and a module checked the same way
everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch import nn

from resviz.api.factories import is_factory, load_factory
from resviz.errors import ResvizError, clip, quote
from resviz.limits import check_seed
from resviz.measure.compiled import original
from resviz.measure.ownership import check_free
from resviz.model.resnet import ResNet, build_model, resolve_device
from resviz.spec import ResNetSpec, load_spec_file, parse_field, split_overrides
from resviz.zoo import CUSTOM, custom, derive, get_spec

SPEC_SUFFIXES = (".json", ".yaml", ".yml")

Target = str | ResNetSpec | nn.Module


def parse_overrides(items: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """``["layers=2,2,2", "preact=yes"]`` -> field values, with one-line errors naming ``flag``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ResvizError(f"{flag} expects KEY=VALUE, got {quote(item)}")
        key, text = item.split("=", 1)
        try:
            name, value = parse_field(key, text)
        except ResvizError as exc:
            raise ResvizError(f"{flag} {exc}") from None
        out[name] = value
    return out


AT_EXAMPLE = "e.g. resnet110@init=fixup or resnet56@norm=none,init=rezero"
"""How messages about ``MODEL@KEY=VALUE`` targets show the form."""


def _value_text(value: Any) -> str:
    """A spec value as the override that sets it is written (``norm=none``, ``layers=2,2,2``)."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _at_changes(target: str, text: str) -> dict[str, Any]:
    """The ``KEY=VALUE`` items after the ``@`` of ``target``, parsed as ``--set`` parses them."""
    allowed = [f.name for f in dataclasses.fields(ResNetSpec) if f.name != "name"]
    changes: dict[str, Any] = {}
    for item in split_overrides(text):
        key, eq, value = item.partition("=")
        if not eq:
            raise ResvizError(f"{quote(target)}: {quote(item)} is not KEY=VALUE ({AT_EXAMPLE})")
        field = key.strip().replace("-", "_")
        if field not in allowed:
            raise ResvizError(f"{quote(target)}: unknown key {quote(key.strip())}; allowed: {', '.join(allowed)}")
        try:
            name, parsed = parse_field(field, value)
        except ResvizError as exc:
            raise ResvizError(f"{quote(target)}: {exc}") from None
        changes[name] = parsed
    return changes


def resolve_variant(target: str) -> ResNetSpec:
    """``MODEL@KEY=VALUE[,KEY=VALUE...]``: the preset ``MODEL`` with those fields changed, named
    ``MODEL@KEY=VALUE,...`` (keys in the order given, values as the spec holds them), so that two
    variants of one architecture keep distinct names side by side in a comparison. Changes that
    leave the preset as it is give the preset itself, under its own name."""
    base, _, text = target.strip().partition("@")
    if not base.strip() or not text.strip():
        raise ResvizError(f"{quote(target)}: expected MODEL@KEY=VALUE[,KEY=VALUE...] ({AT_EXAMPLE})")
    preset = get_spec(base)
    changes = _at_changes(target, text)
    try:
        spec = ResNetSpec.from_dict({**preset.to_dict(), **changes})
    except ResvizError as exc:
        raise ResvizError(f"{quote(target)}: {exc}") from None
    if spec == preset:
        return preset
    suffix = ",".join(f"{k}={_value_text(getattr(spec, k))}" for k in changes)
    return dataclasses.replace(spec, name=f"{preset.name}@{suffix}").validate()


def resolve_spec(
    target: str | ResNetSpec, plain: bool = False, overrides: dict[str, Any] | None = None,
) -> ResNetSpec:
    """A preset name, a spec file, ``custom`` or a spec, with ``overrides`` applied and validated;
    ``plain`` swaps in the plain twin.

    An overridden preset is renamed ``<preset>-custom`` unless it equals a preset
    (:func:`resviz.zoo.derive`), so its summary is never compared with the preset's figures.
    ``MODEL@KEY=VALUE,...`` names a preset with per-model changes (:func:`resolve_variant`), so
    every surface that resolves names takes it, and ``overrides`` apply on top.
    """
    changes = dict(overrides or {})
    if isinstance(target, ResNetSpec):
        spec = derive(target.validate(), changes) if changes else target.validate()
    elif isinstance(target, str) and target.lower().endswith(SPEC_SUFFIXES):
        spec = ResNetSpec.from_dict({**load_spec_file(target).to_dict(), **changes})
    elif isinstance(target, str) and target.strip().lower() == CUSTOM:
        spec = custom(changes)
    elif is_factory(target):
        raise ResvizError(f"{quote(str(target))} names a model resviz did not build: it has no spec (--plain, --set "
                          f"and spec-only commands do not apply to it)")
    elif isinstance(target, str) and "@" in target:
        spec = resolve_variant(target)
        spec = derive(spec, changes) if changes else spec
    elif isinstance(target, str):
        spec = derive(get_spec(target), changes) if changes else get_spec(target)
    else:
        raise ResvizError(f"expected a model name, a ResNetSpec or an nn.Module, got {clip(type(target).__name__)}")
    return spec.plain() if plain else spec


def resolve_target(
    target: Target, plain: bool = False, overrides: dict[str, Any] | None = None, seed: int = 0,
) -> ResNetSpec | nn.Module:
    """What a target names: a spec (:func:`resolve_spec`), or a module: the user's own, or one a
    factory builds (``pkg.mod:factory``, ``file.py:factory``, ``torchvision:resnet50``, built with
    the global RNG seeded by ``seed`` and restored). ``plain`` and ``overrides`` apply to specs only."""
    if isinstance(target, nn.Module) or is_factory(target):
        if plain or overrides:
            raise ResvizError("--plain and --set apply to resviz's own models, not to a module or a factory")
        return target if isinstance(target, nn.Module) else built_factory(str(target), seed)
    return resolve_spec(target, plain, overrides)


def built_factory(target: str, seed: int = 0) -> nn.Module:
    """The module ``pkg.mod:factory`` builds, with the global RNG seeded by ``seed`` (and restored)."""
    check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load_factory(target)


@dataclass(frozen=True)
class Resolved:
    """A model ready to measure: the module, its label in records, its spec (``None`` for a
    module resviz did not build) and the device it lives on."""

    model: nn.Module
    label: str
    spec: ResNetSpec | None
    device: torch.device


def spec_of(model: nn.Module) -> ResNetSpec | None:
    """The spec a resviz model was built from (read through a ``torch.compile`` wrapper);
    ``None`` for anyone else's module."""
    inner = original(model)
    return inner.spec if isinstance(inner, ResNet) else None


def label_of(model: nn.Module) -> str:
    """The model's name in records: its spec's name, else its class name (the original module's,
    for a compiled one)."""
    spec = spec_of(model)
    return spec.name if spec is not None else type(original(model)).__name__


def measuring_device(device: str | torch.device) -> torch.device:
    """The device a measurement runs on (``auto``: CUDA when present); the meta device holds no
    weights, so nothing can be traced or trained there."""
    dev = resolve_device(device)
    if dev.type == "meta":
        raise ResvizError("cannot trace on the meta device: use cpu or cuda")
    return dev


def resolve_model(target: Target, device: str | torch.device = "auto", seed: int = 0) -> Resolved:
    """Build a name or spec with weights seeded by ``seed`` on ``device``, or take the user's
    module where it already lives (a different ``device`` is refused: resviz never moves it).
    The seed is checked first (:func:`resviz.limits.check_seed`), for modules too. A compiled
    module (``torch.compile``) resolves to its original module: resviz measures it eagerly."""
    check_seed(seed)
    if is_factory(target):  # resviz builds it, so resviz may put it on the measuring device
        dev = measuring_device(device)
        built = built_factory(str(target), seed).to(dev)
        return Resolved(built, label_of(built), None, dev)
    if isinstance(target, nn.Module):
        target = original(target)
        check_free(target, label_of(target))  # another measurement may have swapped its parameters out
        params = list(target.parameters())
        here = params[0].device if params else torch.device("cpu")
        if here.type == "meta":
            raise ResvizError("the model is on the meta device: it has no weights to trace")
        if str(device).strip().lower() != "auto":
            want = resolve_device(device)
            if want.type != here.type:
                raise ResvizError(f"the model is on {here.type} but device={want.type} was asked: move it first")
        return Resolved(target, label_of(target), spec_of(target), here)
    spec = resolve_spec(target)
    dev = measuring_device(device)
    torch.manual_seed(seed)
    return Resolved(build_model(spec, device=dev), spec.name, spec, dev)


__all__ = [
    "CUSTOM", "Resolved", "Target", "label_of", "measuring_device", "parse_overrides", "resolve_model", "resolve_spec",
    "resolve_target", "resolve_variant", "spec_of",
]
