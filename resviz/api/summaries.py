"""Shapes, parameters and MACs of any target, with the notes that compare them with the papers."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from resviz.api.factories import find_factory, is_factory
from resviz.api.sizes import SizeLike, static_shape
from resviz.api.targets import Target, label_of, resolve_target, spec_of
from resviz.errors import ResvizError, quote
from resviz.measure.graph import says_meta
from resviz.measure.static import MetaOnly, analyze_module, weighted_depth
from resviz.measure.static import analyze_spec as analyze_shape
from resviz.model.fastmeta import WeightsOnMeta
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
    if is_factory(target) and not plain:
        return factory_summary(str(target), input_size)[1]
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
    if is_factory(target):
        return factory_summary(str(target), input_size)[1]
    found = resolve_target(target)
    if isinstance(found, nn.Module):
        return _module_summary(found, input_size, None)
    return analyze_spec(found, input_size)


def factory_summary(
    target: str, input_size: SizeLike | None = None, label: str | None = None,
) -> tuple[nn.Module, Summary]:
    """The static analysis of the model ``pkg.mod:factory`` builds, and the module it was made of.

    The factory runs under ``torch.device("meta")`` first, so no weight is allocated and a model
    of any size is counted at once; where its constructor reads tensor values (timm's drop-path
    rates), under :class:`~resviz.model.fastmeta.WeightsOnMeta`, which keeps only the weights off
    the host; where neither builds, or the forward cannot run there (it reads tensor values), the
    model is built for real (seed 0) and counted as any module is, so a failure is then the
    model's own, in one line. Each attempt calls the factory again (up to three times; its side
    effects repeat), with the global RNG seeded 0 and restored after. An error that is not the meta
    device's (a bad ``input_size``, a layer that does not fit) is raised at once, never retried
    with real weights.
    """
    if input_size is not None:
        static_shape(None, input_size)
    with torch.random.fork_rng(devices=[]):  # seeded as built_factory builds: every attempt builds the same
        torch.manual_seed(0)
        for module in _builds(target):
            try:
                return module, _module_summary(module, input_size, label)
            except MetaOnly:  # the forward reads values: only real weights will do
                continue
    raise ResvizError(f"{quote(target)} builds its model with weights on the meta device, and its forward reads "
                      "tensor values: it cannot be counted")


def hollow_builds(target: str) -> Iterator[nn.Module]:
    """The model ``pkg.mod:factory`` builds without real weights: under ``torch.device("meta")``,
    then under ``WeightsOnMeta``, each only when asked for (a constructor may take another branch
    on the meta device, so a second build can answer what the first could not). A constructor
    that fails there for the meta device's sake is skipped, any other failure is raised; the
    warnings PyTorch gives when a factory loads weights into meta parameters (a no-op) are silenced.
    Call it with the global RNG forked and seeded, as :func:`factory_summary` does."""
    make = find_factory(target)  # imports outside the meta device: its modules' own code runs as usual
    for on_meta in (lambda: torch.device("meta"), WeightsOnMeta):
        try:
            with on_meta(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*meta parameter.*", category=UserWarning)
                module = make()
        except ResvizError as exc:
            if not says_meta(str(exc)):
                raise
            continue
        yield module


def _builds(target: str) -> Iterator[nn.Module]:
    """:func:`hollow_builds`, then the model built for real."""
    yield from hollow_builds(target)
    yield find_factory(target)()


def _module_summary(module: nn.Module, input_size: SizeLike | None, label: str | None) -> Summary:
    spec = spec_of(module)
    return analyze_module(module, static_shape(spec, input_size), label=label or label_of(module), spec=spec)


__all__ = ["analyze_spec", "factory_summary", "hollow_builds", "static_summary", "summarize", "weighted_depth"]
