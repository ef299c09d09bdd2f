"""timm RegNetY (``timm.models.regnet``): Y-block = X-block (group-conv bottleneck) + squeeze-and-excitation.

Radosavovic et al., "Designing Network Design Spaces", arXiv:2003.13678; SE: arXiv:1709.01507. As timm writes
it: ``conv1`` / ``conv2`` (grouped 3x3, stride) / ``conv3`` are ``ConvNormAct`` (``conv`` + ``bn``, a
``BatchNormAct2d``; ``conv3`` without activation), ``se`` between ``conv2`` and ``conv3`` (reduced width from the
block's *input* width), ``downsample`` = ``create_shortcut``: ``nn.Identity()`` when shape is kept, 1x1
``ConvNormAct`` otherwise; ``drop_path`` = ``nn.Identity()`` at rate 0; ``x = drop_path(x) + downsample(shortcut)``,
then ``act3``. Stages ``s1``, ``s2`` ... hold blocks ``b1``, ``b2`` ...; every stage starts with stride 2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.families import Residual
from tests.families.common import ClassifierHead, ConvNormAct, DropPath, SEModule

INPUT = (2, 3, 32, 32)
NOT_RESIDUAL: list[str] = []
VARIANTS: dict[str, dict[str, Any]] = {"default": {}, "drop_path": {"drop_path_rate": 0.1}}


def create_shortcut(in_chs: int, out_chs: int, stride: int) -> nn.Module:
    if in_chs != out_chs or stride != 1:
        return ConvNormAct(in_chs, out_chs, 1, stride=stride, apply_act=False)
    return nn.Identity()


class Bottleneck(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, group_size: int = 8, se_ratio: float = 0.25,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        bottleneck_chs = out_chs
        groups = bottleneck_chs // group_size
        self.conv1 = ConvNormAct(in_chs, bottleneck_chs, kernel_size=1)
        self.conv2 = ConvNormAct(bottleneck_chs, bottleneck_chs, kernel_size=3, stride=stride, groups=groups)
        self.se = SEModule(bottleneck_chs, rd_channels=round(in_chs * se_ratio))
        self.conv3 = ConvNormAct(bottleneck_chs, out_chs, kernel_size=1, apply_act=False)
        self.act3 = nn.ReLU()
        self.downsample = create_shortcut(in_chs, out_chs, stride)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.se(x)
        x = self.conv3(x)
        if self.downsample is not None:
            x = self.drop_path(x) + self.downsample(shortcut)
        return self.act3(x)


class RegStage(nn.Module):
    def __init__(self, depth: int, in_chs: int, out_chs: int, rates: list[float], group_size: int) -> None:
        super().__init__()
        for i in range(depth):
            block = Bottleneck(in_chs if i == 0 else out_chs, out_chs, 2 if i == 0 else 1, group_size,
                               drop_path_rate=rates[i])
            self.add_module(f"b{i + 1}", block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x = block(x)
        return x


def _rates(depths: tuple[int, ...], drop_path_rate: float) -> list[list[float]]:
    return [r.tolist() for r in torch.linspace(0, drop_path_rate, sum(depths)).split(list(depths))]


class RegNet(nn.Module):
    def __init__(self, depths: tuple[int, ...], widths: tuple[int, ...], stem_width: int, group_size: int,
                 drop_path_rate: float, num_classes: int) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, stem_width, 3, stride=2)
        prev = stem_width
        for i, (depth, width, rates) in enumerate(zip(depths, widths, _rates(depths, drop_path_rate), strict=True)):
            self.add_module(f"s{i + 1}", RegStage(depth, prev, width, rates, group_size))
            prev = width
        self.final_conv = nn.Identity()
        self.head = ClassifierHead(prev, num_classes)
        self.num_stages = len(depths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(self.num_stages):
            x = getattr(self, f"s{i + 1}")(x)
        return self.head(self.final_conv(x))


def build(depths: tuple[int, ...] = (2, 1), widths: tuple[int, ...] = (16, 32), stem_width: int = 8,
          group_size: int = 8, drop_path_rate: float = 0.0, num_classes: int = 10) -> nn.Module:
    return RegNet(depths, widths, stem_width, group_size, drop_path_rate, num_classes)


def truth(depths: tuple[int, ...] = (2, 1), widths: tuple[int, ...] = (16, 32), stem_width: int = 8,
          group_size: int = 8, drop_path_rate: float = 0.0, num_classes: int = 10) -> list[Residual]:
    out: list[Residual] = []
    for s, (depth, rates) in enumerate(zip(depths, _rates(depths, drop_path_rate), strict=True)):
        for b in range(depth):
            name = f"s{s + 1}.b{b + 1}"
            mods = ("drop-path", "se") if rates[b] > 0 else ("se",)
            out.append(Residual(name, 1, "projection" if b == 0 else "identity", f"{name}.conv3.bn", mods, s,
                                f"{name}.downsample"))
    return out


TRUTH = truth()
