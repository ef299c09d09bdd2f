"""The Python entry points that compose spec -> model -> records -> analyses."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from torch import nn

from resviz.analysis.paper import needs_stride_variant, reference_notes
from resviz.errors import ResvizError
from resviz.model.resnet import ResNet, build_model
from resviz.spec import ResNetSpec
from resviz.tracing.records import Summary
from resviz.tracing.static import analyze_module, default_input_size, parse_input_size
from resviz.zoo import get_spec


def resolve_spec(target: str | ResNetSpec, plain: bool = False) -> ResNetSpec:
    """A preset name or a spec (validated); ``plain`` swaps in the plain twin."""
    if isinstance(target, str):
        spec = get_spec(target)
    elif isinstance(target, ResNetSpec):
        spec = target.validate()
    else:
        raise ResvizError(f"expected a model name, a ResNetSpec or an nn.Module, got {type(target).__name__}")
    return spec.plain() if plain and spec.has_skips else spec


def summarize(
    target: str | ResNetSpec | nn.Module,
    input_size: str | Sequence[int] | None = None,
    plain: bool = False,
) -> Summary:
    """Shapes, parameters, MACs and activation memory of every layer, computed on ``meta``.

    ``target`` is a preset name, a :class:`ResNetSpec` or any ``nn.Module`` (a torchvision or timm
    model): modules are analysed with meta stand-ins for their tensors and are not modified.
    """
    if isinstance(target, nn.Module):
        spec = target.spec if isinstance(target, ResNet) else None
        shape = parse_input_size(input_size) if input_size is not None else default_input_size(spec)
        return analyze_module(target, shape, spec=spec)
    spec = resolve_spec(target, plain)
    shape = parse_input_size(input_size) if input_size is not None else default_input_size(spec)
    model = build_model(spec, device="meta")
    first = analyze_module(model, shape, spec=spec)
    variant = needs_stride_variant(spec)
    macs_1x1 = None
    if variant is not None and first.input_shape[0] == 1:
        macs_1x1 = analyze_module(build_model(variant, device="meta"), shape, spec=variant).total_macs
    notes = reference_notes(spec, first, macs_1x1)
    return dataclasses.replace(first, notes=(*notes, *first.notes))
