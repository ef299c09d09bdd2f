"""Shapes, parameters and MACs of any target, with the notes that compare them with the papers."""

from __future__ import annotations

import dataclasses

from torch import nn

from resviz.api.sizes import SizeLike, static_shape
from resviz.api.targets import Target, label_of, resolve_target, spec_of
from resviz.errors import ResvizError
from resviz.measure.static import analyze_module, weighted_depth
from resviz.measure.static import analyze_spec as analyze_shape
from resviz.records import Summary
from resviz.spec import ResNetSpec
from resviz.studies.paper import needs_stride_variant, reference_notes


def summarize(target: Target, input_size: SizeLike | None = None, plain: bool = False) -> Summary:
    """Shapes, parameters, MACs and activation memory of every layer, computed on ``meta``, with
    notes comparing the counts with torchvision and the papers.

    ``target`` is a preset name, a spec file, a :class:`~resviz.spec.ResNetSpec` or any
    ``nn.Module`` (a torchvision or timm model): modules are analysed with meta stand-ins for
    their tensors and are not modified.
    """
    found = resolve_target(target, plain)
    if isinstance(found, nn.Module):
        return static_summary(found, input_size)  # no paper to compare a module with
    spec = found
    first = analyze_spec(spec, input_size)
    variant = needs_stride_variant(spec)
    macs_1x1 = None
    if variant is not None and first.input_shape == spec.default_input_size:  # the papers' resolution
        macs_1x1 = analyze_shape(variant, first.input_shape).total_macs
    notes = reference_notes(spec, first, macs_1x1)
    return dataclasses.replace(first, notes=(*notes, *first.notes))


def analyze_spec(spec: ResNetSpec, input_size: SizeLike | None = None) -> Summary:
    """The meta-device pass of a spec alone, without :func:`summarize`'s reference notes (which
    may cost a second pass): what diagrams, reports and the catalog need."""
    return analyze_shape(spec, static_shape(spec, input_size))


def static_summary(target: Target | Summary, input_size: SizeLike | None = None) -> Summary:
    """The meta-device pass alone (no reference notes, never a second pass): what diagrams and
    reports draw. A ready :class:`Summary` is returned as it is."""
    if isinstance(target, Summary):
        if input_size is not None:
            raise ResvizError("input_size cannot change a ready Summary: pass the model instead")
        return target
    found = resolve_target(target)
    if isinstance(found, nn.Module):
        spec = spec_of(found)
        return analyze_module(found, static_shape(spec, input_size), label=label_of(found), spec=spec)
    return analyze_spec(found, input_size)


__all__ = ["analyze_spec", "static_summary", "summarize", "weighted_depth"]
