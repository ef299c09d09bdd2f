"""ConvNeXt (facebookresearch/ConvNeXt ``models/convnext.py``; timm's ``convnext`` is the same block).

Liu et al., "A ConvNet for the 2020s", arXiv:2201.03545. Block: ``dwconv`` (7x7 depthwise) -> permute to
channels-last -> ``norm`` (LayerNorm) -> ``pwconv1`` (Linear, 4x) -> ``act`` (GELU) -> ``pwconv2`` -> ``gamma *``
(layer scale, a Parameter of the block; arXiv:2103.17239) -> permute back -> ``x = input + drop_path(x)``.
Drop-path rates rise linearly over the blocks, so the first block has ``nn.Identity`` and later ones ``DropPath``.
Stages are separated by ``downsample_layers`` (channels-first LayerNorm + 2x2 stride-2 conv): not residual,
but the channels-first LayerNorm adds its bias Parameter (``weight * x + bias``), an addition that is not one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.families import Residual
from tests.families.common import DropPath

INPUT = (2, 3, 32, 32)
VARIANTS: dict[str, dict[str, Any]] = {"default": {}, "no_layer_scale": {"layer_scale_init_value": 0.0}}


class LayerNorm(nn.Module):
    """LayerNorm over channels for channels-last (``F.layer_norm``) or channels-first (written out) tensors."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6, data_format: str = "channels_last") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.data_format = data_format
        self.normalized_shape = (normalized_shape,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_last":
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Block(nn.Module):
    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)
        x = self.norm(x)
        x = self.pwconv1(x)
        x = self.act(x)
        x = self.pwconv2(x)
        if self.gamma is not None:
            x = self.gamma * x
        x = x.permute(0, 3, 1, 2)
        return input + self.drop_path(x)


class ConvNeXt(nn.Module):
    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], drop_path_rate: float,
                 layer_scale_init_value: float, num_classes: int) -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv2d(3, dims[0], kernel_size=4, stride=4), LayerNorm(dims[0], eps=1e-6, data_format="channels_first")))
        for i in range(len(dims) - 1):
            self.downsample_layers.append(nn.Sequential(
                LayerNorm(dims[i], eps=1e-6, data_format="channels_first"),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList()
        rates = _rates(depths, drop_path_rate)
        cur = 0
        for depth, dim in zip(depths, dims, strict=True):
            self.stages.append(nn.Sequential(*[Block(dim, rates[cur + j], layer_scale_init_value)
                                               for j in range(depth)]))
            cur += depth
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))
        return self.head(self.norm(x.mean([-2, -1])))


def _rates(depths: tuple[int, ...], drop_path_rate: float) -> list[float]:
    return [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))]


def build(depths: tuple[int, ...] = (2, 1), dims: tuple[int, ...] = (8, 16), drop_path_rate: float = 0.1,
          layer_scale_init_value: float = 1e-6, num_classes: int = 10) -> nn.Module:
    return ConvNeXt(depths, dims, drop_path_rate, layer_scale_init_value, num_classes)


def truth(depths: tuple[int, ...] = (2, 1), dims: tuple[int, ...] = (8, 16), drop_path_rate: float = 0.1,
          layer_scale_init_value: float = 1e-6, num_classes: int = 10) -> list[Residual]:
    out: list[Residual] = []
    rates = iter(_rates(depths, drop_path_rate))
    for s, depth in enumerate(depths):
        for b in range(depth):
            name = f"stages.{s}.{b}"
            mods = (["drop-path"] if next(rates) > 0 else []) + (["layer-scale"] if layer_scale_init_value > 0 else [])
            out.append(Residual(name, 1, "identity", f"{name}.pwconv2", tuple(mods), s))
    return out


TRUTH = truth()
NOT_RESIDUAL: list[str] = [
    f"downsample_layers.{i}.{j}: channels-first LayerNorm adds its bias Parameter to weight * x_hat (and eps)"
    for i, j in ((0, 1), (1, 0))
]
