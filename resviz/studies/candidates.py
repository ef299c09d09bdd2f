"""One model of a comparison: its name, how to build a fresh copy of it, and what results record.

A comparison builds every model again for each seed, so it needs a recipe, not a module: resviz's
own models are built from their spec after ``torch.manual_seed(seed)``; a model a factory builds
(``pkg.mod:factory``) is built by the factory under the same seed; a module the user hands over is
copied (its weights are the ones given, whatever the seed: the seed changes the batches only), so
the user's module itself is never trained. Which recipe a target gets is decided by
:mod:`resviz.api.comparing`; this layer only calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from resviz.model.resnet import build_model
from resviz.spec import ResNetSpec

Build = Callable[[int, torch.device], nn.Module]
"""``build(seed, device)``: a fresh model on ``device``, in whatever mode it was built."""


@dataclass(frozen=True)
class Candidate:
    """A model to compare. ``spec`` is the spec's dict for a resviz model and empty otherwise;
    ``depth`` counts weighted layers as the papers do (:func:`resviz.measure.static.weighted_depth`
    for a model resviz did not build); ``num_classes`` is the width of its logits."""

    name: str
    build: Build = field(repr=False, compare=False)
    num_classes: int
    has_skips: bool
    depth: int
    spec: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_spec(cls, spec: ResNetSpec) -> Candidate:
        """A resviz model: built from ``spec`` after ``torch.manual_seed(seed)``."""

        def build(seed: int, device: torch.device) -> nn.Module:
            torch.manual_seed(seed)
            return build_model(spec, device=device)

        return cls(spec.name, build, spec.num_classes, spec.has_skips, spec.depth, spec.to_dict())


__all__ = ["Build", "Candidate"]
