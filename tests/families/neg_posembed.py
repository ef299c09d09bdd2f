"""Negative case: position embeddings added to tokens, learned (a Parameter) and fixed sinusoidal (a buffer).

Vaswani et al., arXiv:1706.03762 (sinusoidal); Dosovitskiy et al., arXiv:2010.11929 (learned). ``x + pos``
adds a tensor that does not come from ``x``: not a residual block.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tests.families import Residual

INPUT = (2, 3, 32, 32)
VARIANTS: dict[str, dict[str, Any]] = {"default": {}}
TRUTH: list[Residual] = []
NOT_RESIDUAL: list[str] = [
    "pos_learned: x + pos_embed adds a learned Parameter to the tokens",
    "pos_fixed: x + pe adds a fixed sinusoidal buffer to the tokens",
]


class LearnedPosition(nn.Module):
    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos_embed


class SinusoidalPosition(nn.Module):
    pe: torch.Tensor

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        position = torch.arange(num_tokens).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, num_tokens, dim)
        pe[0, :, 0::2] = torch.sin(position * div)
        pe[0, :, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe


class TokenNet(nn.Module):
    def __init__(self, img_size: int, patch_size: int, dim: int, num_classes: int) -> None:
        super().__init__()
        tokens = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.pos_learned = LearnedPosition(tokens, dim)
        self.pos_fixed = SinusoidalPosition(tokens, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = self.pos_fixed(self.pos_learned(x))
        return self.head(self.norm(x).mean(1))


def build(img_size: int = 32, patch_size: int = 8, dim: int = 16, num_classes: int = 10) -> nn.Module:
    return TokenNet(img_size, patch_size, dim, num_classes)


def truth(**sizes: Any) -> list[Residual]:
    return []
