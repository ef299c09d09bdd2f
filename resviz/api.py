"""The Python entry points that compose spec -> model -> records -> analyses."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from torch import nn

from resviz.analysis.paper import needs_stride_variant, reference_notes
from resviz.model.resnet import ResNet, build_model
from resviz.spec import ResNetSpec
from resviz.tracing.records import Summary
from resviz.tracing.static import analyze_module, default_input_size, parse_input_size
from resviz.zoo import resolve_spec

__all__ = ["analyze_spec", "resolve_spec", "summarize"]


def analyze_spec(spec: ResNetSpec, input_size: str | Sequence[int] | None = None) -> Summary:
    """The meta-device pass alone: what diagrams, reports and the catalog need, without the
    reference notes of :func:`summarize` (which may cost a second pass)."""
    shape = parse_input_size(input_size) if input_size is not None else spec.default_input_size
    return analyze_module(build_model(spec, device="meta"), shape, spec=spec)


def summarize(
    target: str | ResNetSpec | nn.Module,
    input_size: str | Sequence[int] | None = None,
    plain: bool = False,
) -> Summary:
    """Shapes, parameters, MACs and activation memory of every layer, computed on ``meta``, with
    notes comparing the counts with torchvision and the papers.

    ``target`` is a preset name, a :class:`ResNetSpec` or any ``nn.Module`` (a torchvision or timm
    model): modules are analysed with meta stand-ins for their tensors and are not modified.
    """
    if isinstance(target, nn.Module):
        spec = target.spec if isinstance(target, ResNet) else None
        shape = parse_input_size(input_size) if input_size is not None else default_input_size(spec)
        return analyze_module(target, shape, spec=spec)
    spec = resolve_spec(target, plain)
    first = analyze_spec(spec, input_size)
    variant = needs_stride_variant(spec)
    macs_1x1 = None
    if variant is not None and first.input_shape == spec.default_input_size:  # the papers' resolution
        macs_1x1 = analyze_spec(variant, first.input_shape).total_macs
    notes = reference_notes(spec, first, macs_1x1)
    return dataclasses.replace(first, notes=(*notes, *first.notes))
