"""Residual structure found from the computation (resviz.measure.structure) against the ground truth
of every test-local block family (tests/families), the real HuggingFace ResNet, and resviz's presets."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch

from resviz.measure.structure import NotResidual, discover
from tests.families import FAMILIES, ROOT, split_not_residual


def _cases() -> list[Any]:
    out = []
    for family in FAMILIES:
        mod = importlib.import_module(f"tests.families.{family}")
        for variant in getattr(mod, "VARIANTS", {"default": {}}):
            out.append(pytest.param(family, variant, id=f"{family}-{variant}"))
    return out


@pytest.mark.parametrize(("family", "variant"), _cases())
def test_discovery_finds_every_residual_and_nothing_else(family: str, variant: str) -> None:
    mod = importlib.import_module(f"tests.families.{family}")
    sizes = mod.VARIANTS[variant] if hasattr(mod, "VARIANTS") else {}
    torch.manual_seed(0)
    model = mod.build(**sizes)
    truth = mod.truth(**sizes) if hasattr(mod, "truth") else mod.TRUTH
    found = discover(model, mod.INPUT)
    got = [(s.module, s.index, s.shortcut.value, s.main_last, tuple(m.value for m in s.modifiers), s.stage)
           for s in found.sites]
    want = [(t.block, t.index, t.shortcut, t.main_last, t.modifiers, t.stage) for t in truth]
    assert got == want
    residual_modules = {s.module for s in found.sites}
    for entry in mod.NOT_RESIDUAL:
        module, _why = split_not_residual(entry)
        module = "" if module == ROOT else module
        assert module not in residual_modules or any(t.block == module for t in truth), entry


@pytest.mark.parametrize(("family", "reason"), [
    ("neg_unet", NotResidual.LONG_SKIP), ("neg_fpn", NotResidual.LONG_SKIP), ("neg_inception", NotResidual.BRANCH_SUM),
])
def test_additions_that_are_not_residual_say_what_they_are(family: str, reason: NotResidual) -> None:
    mod = importlib.import_module(f"tests.families.{family}")
    found = discover(mod.build(), mod.INPUT)
    modules = {("" if m == ROOT else m) for m, _ in map(split_not_residual, mod.NOT_RESIDUAL)}
    assert not found.sites and {(o.module, o.reason) for o in found.others} == {(m, reason) for m in modules}


def test_a_position_embedding_has_nothing_in_common_with_the_tokens() -> None:
    mod = importlib.import_module("tests.families.neg_posembed")
    found = discover(mod.build(), mod.INPUT)
    assert not found.sites and not found.others


def test_each_branch_reads_the_fork_point_through_its_own_operations() -> None:
    """torchvision-style: the main branch reads x in conv1, the shortcut in downsample's conv (a
    projection) or in the addition itself (identity)."""
    mod = importlib.import_module("tests.families.tv_resnet")
    graph_model = mod.build()
    found = discover(graph_model, mod.INPUT)
    for site in found.sites:
        branches = sorted(b for _, b in site.readers)
        assert branches == ["main", "skip"], site.name
        assert site.input_shape[0] == mod.INPUT[0] and site.output_shape[1:] == site.output_shape[1:]
    assert found.sites[0].skip_operand == found.sites[0].fork  # identity: x itself is added
