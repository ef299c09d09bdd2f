"""Vision Transformer / DeiT (timm ``timm.models.vision_transformer``): two residual additions per block.

Dosovitskiy et al., arXiv:2010.11929; DeiT: Touvron et al., arXiv:2012.12877; layer scale (``ls1``/``ls2``,
CaiT arXiv:2103.17239, DeiT-III arXiv:2204.07118). Block forward as timm writes it:
``x = x + drop_path1(ls1(attn(norm1(x))))``; ``x = x + drop_path2(ls2(mlp(norm2(x))))`` (``ls*`` and
``drop_path*`` are ``nn.Identity`` when off). Attention: ``qkv`` Linear, reshape/permute, then either
``F.scaled_dot_product_attention`` (``fused=True``) or ``q * scale @ k^T -> softmax -> @ v``, then ``proj``.
The model prepends the cls token (``torch.cat``) and adds ``pos_embed`` (a Parameter): not residual.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.families import ROOT, Residual
from tests.families.common import DropPath, LayerScale

INPUT = (2, 3, 32, 32)
VARIANTS: dict[str, dict[str, Any]] = {
    "fused": {},
    "explicit_layer_scale": {"fused": False, "init_values": 1e-5},
    "drop_path": {"drop_path_rate": 0.1},
}
NOT_RESIDUAL: list[str] = [f"{ROOT}: x + pos_embed adds a Parameter (position embedding) to the patch tokens"]


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, fused: bool, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        return self.proj_drop(x)


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(0.0)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, fused: bool, init_values: float | None, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, fused)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class VisionTransformer(nn.Module):
    def __init__(self, img_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int, fused: bool,
                 init_values: float | None, drop_path_rate: float, num_classes: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, self.patch_embed.num_patches + 1, embed_dim) * 0.02)
        self.pos_drop = nn.Dropout(0.0)
        self.norm_pre = nn.Identity()
        rates = _rates(depth, drop_path_rate)
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, fused, init_values, r) for r in rates])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.fc_norm = nn.Identity()
        self.head_drop = nn.Dropout(0.0)
        self.head = nn.Linear(embed_dim, num_classes)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        return self.pos_drop(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_pre(self._pos_embed(self.patch_embed(x)))
        x = self.norm(self.blocks(x))
        return self.head(self.head_drop(self.fc_norm(x[:, 0])))


def _rates(depth: int, drop_path_rate: float) -> list[float]:
    return [x.item() for x in torch.linspace(0, drop_path_rate, depth)]


def build(img_size: int = 32, patch_size: int = 8, embed_dim: int = 16, depth: int = 2, num_heads: int = 2,
          fused: bool = True, init_values: float | None = None, drop_path_rate: float = 0.0,
          num_classes: int = 10) -> nn.Module:
    return VisionTransformer(img_size, patch_size, embed_dim, depth, num_heads, fused, init_values, drop_path_rate,
                             num_classes)


def truth(img_size: int = 32, patch_size: int = 8, embed_dim: int = 16, depth: int = 2, num_heads: int = 2,
          fused: bool = True, init_values: float | None = None, drop_path_rate: float = 0.0,
          num_classes: int = 10) -> list[Residual]:
    out: list[Residual] = []
    for b, rate in enumerate(_rates(depth, drop_path_rate)):
        mods = tuple(sorted((["drop-path"] if rate > 0 else []) + (["layer-scale"] if init_values else [])))
        for index, last in ((1, "attn.proj"), (2, "mlp.fc2")):
            out.append(Residual(f"blocks.{b}", index, "identity", f"blocks.{b}.{last}", mods, 0))
    return out


TRUTH = truth()
