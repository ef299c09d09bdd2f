"""Checkpoints checked against any target: a resviz spec, a module, or the model a
``pkg.mod:factory`` builds.

Keys and shapes are compared on a model without real weights (a spec built on the meta device; a
factory's model built as :func:`~resviz.api.summaries.hollow_builds` builds it), so a checkpoint of
any size is checked without copying a weight; files are read with ``weights_only`` or safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from resviz.api.factories import find_factory, is_factory
from resviz.api.summaries import hollow_builds
from resviz.api.targets import Target, resolve_spec
from resviz.errors import ResvizError
from resviz.model import weights


def check_checkpoint(target: Target, source: str | Path | bytes, name: str | None = None) -> int:
    """Read a checkpoint and check its keys and shapes against ``target``'s model; returns the number
    of tensors. One-line :class:`~resviz.errors.ResvizError` for corrupt files, pickled objects, missing,
    unexpected or mismatched keys. A factory's checkpoint fits when it fits either build without real
    weights (its constructor may take another branch on the meta device), or, where it builds only
    with real weights, that model; otherwise the last build's mismatch is reported."""
    if isinstance(target, nn.Module):
        return weights.check_against(target, source, name)
    if not is_factory(target):
        return weights.check_checkpoint(resolve_spec(target), source, name)
    state = weights.read_state_dict(source, name)
    label = weights.checkpoint_label(source, name)
    last: ResvizError | None = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for model in hollow_builds(str(target)):
            try:
                weights.check_state_dict(model, state, label)
                return len(state)
            except ResvizError as exc:
                last = exc
        if last is None:  # no build without real weights: the real one is the only model to check against
            weights.check_state_dict(find_factory(str(target))(), state, label)
            return len(state)
    raise last


__all__ = ["check_checkpoint"]
