"""Residual structure found from the computation (resviz.measure.structure) against the ground truth
of every test-local block family (tests/families), the real HuggingFace ResNet, and resviz's presets."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch

from resviz.measure.structure import discover
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
