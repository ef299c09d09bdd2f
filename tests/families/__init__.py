"""Test-local models of the residual block families resviz must recognise, each with its ground truth.

torchvision and timm do not import on a CPU-only test machine, so every family is re-implemented here from
the public structure of the library's block (module names, order of operations, in-place operations where the
library uses them). Each family module exposes ``build(**sizes) -> nn.Module``, ``TRUTH`` (the residual
additions of ``build()`` with default sizes), ``NOT_RESIDUAL`` (additions that are not residual blocks) and
``INPUT`` (the input shape), plus ``truth(**sizes)`` (the truth of ``build(**sizes)``) and ``VARIANTS``
(named ``build`` arguments worth testing; the first is the default).

A residual addition is ``out = F(x) + S(x)`` where both operands start from the block input ``x``
(He et al., arXiv:1512.03385; pre-activation: arXiv:1603.05027).

Conventions of ``Residual``:

- ``block``: qualified name of the module whose own ``forward`` performs the addition.
- ``index``: 1-based position of the addition among the residual additions that ``forward`` performs.
- ``main_last``: the last module of the main branch's core computation, in call order: modifiers
  (``modifiers``) applied after it and pass-through modules (``nn.Identity``, ``nn.Dropout(p=0)``, drop-path
  at rate 0) are not counted, nor non-module operations (permute, reshape, a layer-scale Parameter).
- ``shortcut_module``: the module that computes the skip operand; for an identity shortcut, the pass-through
  module the input goes through (``nn.Identity``, an empty ``nn.Sequential``), or ``None`` when the input
  itself is added.
- ``stage``: 0-based index of the run of blocks whose outputs share one resolution.

``NOT_RESIDUAL`` entries read ``"<module>: why"``, where ``<module>`` is the qualified name of the module whose
own ``forward`` performs the addition, or ``<root>`` for the model itself. Bookkeeping additions (BatchNorm's
``num_batches_tracked`` counter) are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

SHORTCUTS = ("identity", "projection", "zero-pad", "pooled-projection")
MODIFIERS = ("drop-path", "eca", "layer-scale", "se")
ROOT = "<root>"

#: Every family module (``tests.families.<name>``), negative cases last.
FAMILIES = (
    "tv_resnet",
    "cifar_resnet",
    "timm_resnetv2",
    "timm_seresnet",
    "timm_ecaresnet",
    "timm_resnet_d",
    "timm_regnety",
    "convnext",
    "vit",
    "hf_resnet",
    "neg_unet",
    "neg_fpn",
    "neg_inception",
    "neg_posembed",
)


@dataclass(frozen=True)
class Residual:
    """One residual addition ``out = F(x) + S(x)`` in a model, as its family's library writes it."""

    block: str
    index: int
    shortcut: str
    main_last: str
    modifiers: tuple[str, ...] = ()
    stage: int = 0
    shortcut_module: str | None = None

    def __post_init__(self) -> None:
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut kind {self.shortcut!r}")
        if tuple(sorted(self.modifiers)) != self.modifiers or not set(self.modifiers) <= set(MODIFIERS):
            raise ValueError(f"modifiers must be a sorted subset of {MODIFIERS}: {self.modifiers}")
        if self.index < 1:
            raise ValueError("index counts from 1")
        if self.shortcut != "identity" and self.shortcut_module is None:
            raise ValueError(f"a {self.shortcut} shortcut is computed by a module: name it")


def split_not_residual(entry: str) -> tuple[str, str]:
    """``"<module>: why"`` -> (qualified module name, "" for the root; why)."""
    name, _, why = entry.partition(": ")
    return ("" if name == ROOT else name), why
