"""Weight initialisation of resviz's ResNets, one function per :class:`~resviz.spec.Init`.

* ``kaiming`` (every paper preset): torchvision's rule, He et al. 2015 (arXiv:1502.01852):
  Kaiming-normal convolutions with ``fan_out``, BatchNorm weight 1 and bias 0, PyTorch's default
  for the linear layer. Convolution biases (present only without normalisation) start at 0, as
  the BatchNorm shift they replace.
* ``skipinit`` and ``rezero``: the same, with the branch multipliers at 0; they are created at 0
  (:class:`~resviz.model.blocks.BranchScale`), so nothing is left to do here.
* ``fixup``: Zhang, Dauphin & Ma 2019 (arXiv:1901.09321), Sec. 3 "Fixup initialization":
  He-initialise, then set the classification layer and the last layer of every residual branch to
  0 and scale the other layers inside each branch by ``L^(-1/(2m-2))`` (:func:`fixup_factor`).
  Shortcut projections are not inside a branch and keep He's initialisation (the paper's
  ImageNet code does the same); the scalar multipliers start at 1 and the scalar biases at 0.

Fixup draws nothing of its own: it rescales and zeroes what ``kaiming`` drew.
"""

from __future__ import annotations

import torch
from torch import nn

from resviz.model.blocks import ResidualBlock
from resviz.spec import BlockKind, Init, ResNetSpec


def initialise(model: nn.Module, spec: ResNetSpec) -> None:
    """Initialise ``model`` (built from ``spec``) in place as ``spec.init`` says."""
    kaiming(model)
    if spec.init is Init.FIXUP:
        fixup(model, spec)


def kaiming(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal (fan_out) convs, BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def branch_layers(block: BlockKind) -> int:
    """Weight layers per residual branch, Fixup's ``m``: 2 in a basic block, 3 in a bottleneck."""
    return 2 if block is BlockKind.BASIC else 3


def fixup_factor(spec: ResNetSpec) -> float:
    """Fixup's rescaling ``L^(-1/(2m-2))`` for ``L`` residual branches of ``m`` layers
    (arXiv:1901.09321, Sec. 3, rule 2): it keeps the update of the whole network's output
    independent of depth when every branch contributes."""
    m = branch_layers(spec.block)
    return float(sum(spec.layers)) ** (-1.0 / (2 * m - 2))


@torch.no_grad()
def fixup(model: nn.Module, spec: ResNetSpec) -> None:
    """Apply Fixup's rules (module docstring) to a He-initialised ``model``."""
    factor = fixup_factor(spec)
    for m in model.modules():
        if isinstance(m, ResidualBlock):
            *scaled, last = m.branch_convs()
            for conv in scaled:
                conv.weight.mul_(factor)
            nn.init.zeros_(last.weight)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


__all__ = ["branch_layers", "fixup", "fixup_factor", "initialise", "kaiming"]
