"""The one place where what a user asks for becomes work for the layers below.

Targets (a preset name, a spec file, ``custom`` with overrides, a spec, a module) are resolved by
:mod:`resviz.api.targets`, input sizes read by :mod:`resviz.api.sizes`, resources checked by
:mod:`resviz.api.preflight`, and then the model, measuring and study layers do the work. The CLI,
the dashboard and ``import resviz`` call these functions and nothing below them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import torch

from resviz.api.checkpoints import check_checkpoint
from resviz.api.factories import is_factory
from resviz.api.preflight import (
    MEMORY_MARGIN,
    Available,
    ProcFiles,
    available_memory,
    check_need,
)
from resviz.api.series import load_series
from resviz.api.sizes import (
    COMPARE_BATCH,
    TRACE_BATCH,
    SizeLike,
    batch_shape,
    default_input_size,
    parse_dims,
    parse_input_size,
    static_shape,
    trace_shape,
)
from resviz.api.summaries import analyze_spec, static_summary, summarize, weighted_depth
from resviz.api.targets import (
    CUSTOM,
    Resolved,
    Target,
    label_of,
    parse_overrides,
    resolve_model,
    resolve_spec,
    resolve_target,
    spec_of,
)
from resviz.api.tracing import check_pass, check_trace, resolve_dtype, trace, trace_memory
from resviz.measure.distributed import Reduce, current_group
from resviz.measure.memory import MemoryNeed, compare_need, trace_need
from resviz.measure.monitor import Monitor, monitor
from resviz.model.resnet import ResNet, build_model, resolve_device
from resviz.model.weights import load_checkpoint
from resviz.records import Reconciliation
from resviz.studies.catalog import CatalogRow, catalog
from resviz.studies.reconcile import check_counters, reconcile_module
from resviz.zoo import TORCHVISION_PRESETS, derive, get_spec, list_models, skip_twin

if TYPE_CHECKING:
    from resviz.api.comparing import compare
    from resviz.api.studying import study, study_kind

#: Loaded on first use: a comparison needs the data loaders (NumPy, Pillow), which every other
#: command, and so every surface's start-up, can do without.
_LAZY = {"compare": "resviz.api.comparing", "study": "resviz.api.studying", "study_kind": "resviz.api.studying"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'resviz.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def writes_files(all_ranks: bool = False) -> bool:
    """Whether this process writes a run's files: under ``torch.distributed`` only rank 0 does
    (every rank holds the same global numbers; one file, not one per rank), unless ``all_ranks``."""
    group = current_group()
    return all_ranks or group is None or group.rank == 0


def reconcile(target: Target, input_size: SizeLike | None = None) -> Reconciliation:
    """resviz's counts beside fvcore's, torchinfo's and ``FlopCounterMode``'s, per layer type:
    one real forward pass on the CPU (a spec or a factory's model is built with seed 0; a module is
    used as it is), after
    the memory pre-flight of that pass. Needs the ``reconcile`` extra (fvcore, torchinfo)."""
    check_counters()
    cpu = torch.device("cpu")
    if is_factory(target):  # a factory's model is built for real here, seeded as resolve_target builds it
        target = resolve_target(target)
    if isinstance(target, torch.nn.Module):
        summary = summarize(target, input_size=input_size)
        check_pass(target, summary.input_shape, cpu, backward=False, what="a reconciliation")
        return reconcile_module(target, summary)
    spec = resolve_spec(target)
    summary = summarize(spec, input_size=input_size)
    check_pass(spec, summary.input_shape, cpu, backward=False, what="a reconciliation")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(spec, device="cpu")
    return reconcile_module(model, summary)


__all__ = [
    "COMPARE_BATCH", "CUSTOM", "MEMORY_MARGIN", "TORCHVISION_PRESETS", "TRACE_BATCH",
    "Available", "CatalogRow", "MemoryNeed", "Monitor", "ProcFiles", "Reduce", "ResNet", "Resolved", "SizeLike",
    "Target",
    "analyze_spec", "available_memory", "batch_shape", "build_model", "catalog", "check_checkpoint", "check_need",
    "check_pass", "check_trace", "compare", "compare_need", "default_input_size", "derive",
    "get_spec", "is_factory", "label_of", "list_models", "load_checkpoint", "load_series", "monitor", "parse_dims",
    "parse_input_size",
    "parse_overrides", "reconcile", "resolve_device", "resolve_dtype", "resolve_model", "resolve_spec",
    "resolve_target",
    "skip_twin", "spec_of", "static_shape", "static_summary", "study", "study_kind", "summarize", "trace",
    "trace_memory", "trace_need",
    "trace_shape", "weighted_depth", "writes_files",
]
