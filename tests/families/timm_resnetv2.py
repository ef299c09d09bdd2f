"""timm ResNetV2 (``timm.models.resnetv2``): pre-activation blocks ``PreActBottleneck`` and ``PreActBasic``.

He et al., "Identity Mappings in Deep Residual Networks", arXiv:1603.05027. As timm writes it:
``x_preact = norm1(x)``; the shortcut is ``x`` or, in a projection block, ``downsample(x_preact)`` (a
``DownsampleConv``: 1x1 conv, ``norm`` = ``nn.Identity`` in pre-activation); main branch
``conv1(x_preact) -> conv2(norm2(.)) [-> conv3(norm3(.))] -> drop_path``; ``return x + shortcut``. Norms are
``BatchNormAct2d`` (BatchNorm subclass applying ReLU inside, timm's ``resnetv2_50`` norm layer). The first
bottleneck block of every stage projects; a basic block projects only when the stride or width changes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from tests.families import Residual
from tests.families.common import BatchNormAct2d, ClassifierHead, DropPath, make_divisible

INPUT = (2, 3, 32, 32)
NOT_RESIDUAL: list[str] = []
VARIANTS: dict[str, dict[str, Any]] = {
    "bottleneck": {},
    "basic": {"basic": True, "channels": (8, 16)},
    "drop_path": {"drop_path_rate": 0.1},
}


def conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)


class DownsampleConv(nn.Module):
    """Projection shortcut of a pre-activation block: 1x1 conv; ``norm`` is Identity (the input is pre-activated)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = conv(in_chs, out_chs, 1, stride=stride)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class PreActBasic(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int, project: bool, drop_path_rate: float) -> None:
        super().__init__()
        use_proj = project and (stride != 1 or in_chs != out_chs)
        self.downsample = DownsampleConv(in_chs, out_chs, stride) if use_proj else None
        self.norm1 = BatchNormAct2d(in_chs)
        self.conv1 = conv(in_chs, out_chs, 3, stride=stride)
        self.norm2 = BatchNormAct2d(out_chs)
        self.conv2 = conv(out_chs, out_chs, 3)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_preact = self.norm1(x)
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(x_preact)
        x = self.conv1(x_preact)
        x = self.conv2(self.norm2(x))
        x = self.drop_path(x)
        return x + shortcut


class PreActBottleneck(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int, project: bool, drop_path_rate: float) -> None:
        super().__init__()
        mid_chs = make_divisible(out_chs * 0.25)
        self.downsample = DownsampleConv(in_chs, out_chs, stride) if project else None
        self.norm1 = BatchNormAct2d(in_chs)
        self.conv1 = conv(in_chs, mid_chs, 1)
        self.norm2 = BatchNormAct2d(mid_chs)
        self.conv2 = conv(mid_chs, mid_chs, 3, stride=stride)
        self.norm3 = BatchNormAct2d(mid_chs)
        self.conv3 = conv(mid_chs, out_chs, 1)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_preact = self.norm1(x)
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(x_preact)
        x = self.conv1(x_preact)
        x = self.conv2(self.norm2(x))
        x = self.conv3(self.norm3(x))
        x = self.drop_path(x)
        return x + shortcut


class ResNetStage(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int, depth: int, rates: list[float], basic: bool) -> None:
        super().__init__()
        block_fn = PreActBasic if basic else PreActBottleneck
        self.blocks = nn.Sequential()
        for i in range(depth):
            self.blocks.add_module(str(i), block_fn(in_chs, out_chs, stride if i == 0 else 1, i == 0, rates[i]))
            in_chs = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def _rates(layers: tuple[int, ...], drop_path_rate: float) -> list[list[float]]:
    return [r.tolist() for r in torch.linspace(0, drop_path_rate, sum(layers)).split(list(layers))]


class ResNetV2(nn.Module):
    def __init__(self, layers: tuple[int, ...], channels: tuple[int, ...], stem_chs: int, basic: bool,
                 drop_path_rate: float, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(OrderedDict(
            conv=conv(3, stem_chs, 7, stride=2), pool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        self.stages = nn.Sequential()
        prev = stem_chs
        for s, (depth, out_chs, rates) in enumerate(zip(layers, channels, _rates(layers, drop_path_rate), strict=True)):
            self.stages.add_module(str(s), ResNetStage(prev, out_chs, 1 if s == 0 else 2, depth, rates, basic))
            prev = out_chs
        self.norm = BatchNormAct2d(prev)
        self.head = ClassifierHead(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.stages(self.stem(x)))
        return self.head(x)


def build(layers: tuple[int, ...] = (2, 1), channels: tuple[int, ...] = (16, 32), stem_chs: int = 8,
          basic: bool = False, drop_path_rate: float = 0.0, num_classes: int = 10) -> nn.Module:
    return ResNetV2(layers, channels, stem_chs, basic, drop_path_rate, num_classes)


def truth(layers: tuple[int, ...] = (2, 1), channels: tuple[int, ...] = (16, 32), stem_chs: int = 8,
          basic: bool = False, drop_path_rate: float = 0.0, num_classes: int = 10) -> list[Residual]:
    out: list[Residual] = []
    prev = stem_chs
    for s, (depth, out_chs, rates) in enumerate(zip(layers, channels, _rates(layers, drop_path_rate), strict=True)):
        for b in range(depth):
            name = f"stages.{s}.blocks.{b}"
            project = b == 0 and (not basic or s > 0 or prev != out_chs)
            mods = ("drop-path",) if rates[b] > 0 else ()
            out.append(Residual(name, 1, "projection" if project else "identity",
                                f"{name}.conv2" if basic else f"{name}.conv3", mods, s,
                                f"{name}.downsample" if project else None))
            prev = out_chs
    return out


TRUTH = truth()
