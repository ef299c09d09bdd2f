"""Which modules are layers: a row each in summaries, traces and the monitor.

A leaf module (one without children) is a layer. So is a module that holds parameters of its own
and is one of the parametrised layer types, even when it has children: fused modules such as
timm's ``BatchNormAct2d`` (a ``BatchNorm2d`` whose forward applies its activation child) compute
their normalisation themselves, and without a row of their own that normalisation would be
missing from every table. Its children keep their own rows.
"""

from __future__ import annotations

from torch import nn

from resviz.model.blocks import Fork

LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.modules.conv._ConvNd, nn.Linear, nn.LayerNorm, nn.GroupNorm,
)


def is_layer(module: nn.Module) -> bool:
    """Whether ``module`` gets a row of its own (see the module docstring); never a :class:`Fork`."""
    if isinstance(module, Fork):
        return False
    if not any(True for _ in module.children()):
        return True
    return isinstance(module, LAYER_TYPES) and any(True for _ in module.parameters(recurse=False))


__all__ = ["LAYER_TYPES", "is_layer"]
