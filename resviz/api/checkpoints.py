"""Checkpoints checked against any target: a resviz spec, or the model a ``pkg.mod:factory`` builds.

Keys and shapes are compared on a model without real weights (the spec built on the meta device; a
factory's model built as :func:`~resviz.api.summaries.factory_model` builds it), so a checkpoint of
any size is checked without copying a weight; files are read with ``weights_only`` or safetensors.
"""

from __future__ import annotations

from pathlib import Path

from resviz.api.factories import is_factory
from resviz.api.summaries import factory_model
from resviz.api.targets import resolve_spec
from resviz.model import weights
from resviz.spec import ResNetSpec


def check_checkpoint(target: str | ResNetSpec, source: str | Path | bytes, name: str | None = None) -> int:
    """Read a checkpoint and check its keys and shapes against ``target``'s model; returns the number
    of tensors. One-line :class:`~resviz.errors.ResvizError` for corrupt files, pickled objects, missing,
    unexpected or mismatched keys."""
    if is_factory(target):
        return weights.check_against(factory_model(str(target)), source, name)
    return weights.check_checkpoint(resolve_spec(target), source, name)


__all__ = ["check_checkpoint"]
