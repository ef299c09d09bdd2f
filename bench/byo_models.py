"""Full-size factories of the test-local families, for bench/byo_summary.py."""

from __future__ import annotations

from torch import nn

from tests.families import tv_resnet, vit


def vit_b16() -> nn.Module:
    """ViT-B/16 at 224x224: 12 blocks of width 768, 12 heads, 1000 classes."""
    return vit.build(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, num_classes=1000)


def resnet50() -> nn.Module:
    """torchvision's resnet50 layout."""
    return tv_resnet.build("bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), 1000)
