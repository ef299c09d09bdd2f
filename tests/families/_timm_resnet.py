"""timm ResNet (``timm.models.resnet``): the generic ResNet behind SE-ResNet, ECA-ResNet and ResNet-D.

Bottleneck order as timm writes it: ``conv1 bn1 act1 conv2 bn2 drop_block act2 aa conv3 bn3 [se] [drop_path]``,
``shortcut = downsample(shortcut)``, ``x += shortcut``, ``act3``; activations ``ReLU(inplace=True)``. Shortcuts:
``downsample_conv`` (1x1 conv + BN) or, for ResNet-D (He et al., "Bag of Tricks", arXiv:1812.01187),
``downsample_avg`` = ``AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)`` (``nn.Identity`` at stride 1)
-> 1x1 conv -> BN. ResNet-D also uses the deep 3x3 stem. SE: arXiv:1709.01507; ECA: arXiv:1910.03151.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tests.families import Residual
from tests.families.common import DropPath, EcaModule, SelectAdaptivePool2d, SEModule

ATTN: dict[str, type[SEModule] | type[EcaModule]] = {"se": SEModule, "eca": EcaModule}


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attn_layer: str = "", drop_path: nn.Module | None = None) -> None:
        super().__init__()
        width = planes  # floor(planes * base_width / 64) * cardinality, at base_width 64 and cardinality 1
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.drop_block = nn.Identity()
        self.act2 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv3 = nn.Conv2d(width, outplanes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.se = ATTN[attn_layer](outplanes) if attn_layer else None
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)
        x = self.conv2(x)
        x = self.bn2(x)
        x = self.drop_block(x)
        x = self.act2(x)
        x = self.aa(x)
        x = self.conv3(x)
        x = self.bn3(x)
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        return self.act3(x)


def downsample_conv(in_chs: int, out_chs: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride=stride, padding=0, bias=False), nn.BatchNorm2d(out_chs))


def downsample_avg(in_chs: int, out_chs: int, stride: int) -> nn.Sequential:
    pool: nn.Module = nn.Identity()
    if stride != 1:
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
    return nn.Sequential(pool, nn.Conv2d(in_chs, out_chs, 1, stride=1, padding=0, bias=False), nn.BatchNorm2d(out_chs))


def _stem(deep: bool, stem_width: int, inplanes: int) -> nn.Module:
    if not deep:
        return nn.Conv2d(3, inplanes, kernel_size=7, stride=2, padding=3, bias=False)
    return nn.Sequential(
        nn.Conv2d(3, stem_width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
        nn.Conv2d(stem_width, stem_width, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(stem_width),
        nn.ReLU(inplace=True), nn.Conv2d(stem_width, inplanes, 3, stride=1, padding=1, bias=False),
    )


class ResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...], planes: tuple[int, ...], stem_width: int, deep_stem: bool,
                 avg_down: bool, attn_layer: str, drop_path_rate: float, num_classes: int) -> None:
        super().__init__()
        inplanes = stem_width * 2 if deep_stem else stem_width
        self.conv1 = _stem(deep_stem, stem_width, inplanes)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        total, index = sum(layers), 0
        for s, (depth, width) in enumerate(zip(layers, planes, strict=True)):
            stride = 1 if s == 0 else 2
            blocks: list[nn.Module] = []
            for b in range(depth):
                out = width * Bottleneck.expansion
                downsample = None
                if b == 0 and (stride != 1 or inplanes != out):
                    downsample = (downsample_avg if avg_down else downsample_conv)(inplanes, out, stride)
                rate = drop_path_rate * index / max(total - 1, 1)
                blocks.append(Bottleneck(inplanes, width, stride if b == 0 else 1, downsample, attn_layer,
                                         DropPath(rate) if rate > 0 else None))
                inplanes, index = out, index + 1
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        self.global_pool = SelectAdaptivePool2d()
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for s in range(self.num_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(self.global_pool(x))


def build(layers: tuple[int, ...] = (2, 1), planes: tuple[int, ...] = (4, 8), stem_width: int = 8,
          deep_stem: bool = False, avg_down: bool = False, attn_layer: str = "", drop_path_rate: float = 0.0,
          num_classes: int = 10) -> nn.Module:
    return ResNet(layers, planes, stem_width, deep_stem, avg_down, attn_layer, drop_path_rate, num_classes)


def truth(layers: tuple[int, ...] = (2, 1), planes: tuple[int, ...] = (4, 8), stem_width: int = 8,
          deep_stem: bool = False, avg_down: bool = False, attn_layer: str = "", drop_path_rate: float = 0.0,
          num_classes: int = 10) -> list[Residual]:
    inplanes = stem_width * 2 if deep_stem else stem_width
    out: list[Residual] = []
    index = 0
    for s, (depth, width) in enumerate(zip(layers, planes, strict=True)):
        for b in range(depth):
            name = f"layer{s + 1}.{b}"
            mods = ([attn_layer] if attn_layer else []) + (["drop-path"] if drop_path_rate * index > 0 else [])
            project = b == 0 and (s > 0 or inplanes != width * Bottleneck.expansion)
            kind = "identity"
            if project:
                kind = "pooled-projection" if avg_down and s > 0 else "projection"
            out.append(Residual(name, 1, kind, f"{name}.bn3", tuple(sorted(mods)), s,
                                f"{name}.downsample" if project else None))
            inplanes, index = width * Bottleneck.expansion, index + 1
    return out


def variant(**defaults: Any) -> tuple[Callable[..., nn.Module], Callable[..., list[Residual]]]:
    """``build`` and ``truth`` of one timm ResNet variant: ``defaults`` (``attn_layer="se"``, say),
    overridden by the sizes a test passes."""

    def build_variant(**sizes: Any) -> nn.Module:
        return build(**{**defaults, **sizes})

    def truth_variant(**sizes: Any) -> list[Residual]:
        return truth(**{**defaults, **sizes})

    return build_variant, truth_variant
