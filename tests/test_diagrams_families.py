"""Diagrams of residual networks resviz did not build, drawn from their discovered structure.

Each family's test-local model (tests/families) is summarised, traced and drawn in every view; the block
views must name the model's own layers (relative to the module that performs the addition, also where one
module holds two residuals, as a ViT block does) and describe blocks of no paper's kind by their own order
of operations.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType

import pytest

import resviz
from resviz.errors import ResvizError
from resviz.records import BlockType, Summary
from resviz.render.diagrams import VIEWS, draw

POSITIVE = ("tv_resnet", "timm_resnetv2", "timm_seresnet", "timm_regnety", "convnext", "vit", "hf_resnet")
BLOCK_VIEWS = ("basic-block", "bottleneck")


def family(name: str) -> ModuleType:
    return importlib.import_module(f"tests.families.{name}")


def summary_of(name: str) -> Summary:
    fam = family(name)
    return resviz.summarize(fam.build(), input_size=fam.INPUT)


def labels(dot: str) -> list[str]:
    return re.findall(r'label="([^"]*)"', dot)


@pytest.mark.parametrize("name", POSITIVE)
def test_every_view_draws_the_models_own_layers(name: str) -> None:
    s = summary_of(name)
    kinds = {b.kind.bottleneck for b in s.blocks}
    for view in VIEWS:
        if view in BLOCK_VIEWS and (view == "bottleneck") not in kinds:
            with pytest.raises(ResvizError, match=r"has no .* blocks"):
                draw(s, view=view)
            continue
        dot = draw(s, view=view).source
        assert "->" in dot
        if view in BLOCK_VIEWS:
            drawn = re.search(r'label="([^" ]+) \(', dot)
            assert drawn is not None
            block = next(b for b in s.blocks if b.name == drawn.group(1))
            firsts = {lab.split("\\n")[0] for lab in labels(dot)}
            rows = {lr.name for lr in s.layers if lr.block == block.name and lr.type != "ResidualAdd"}
            assert rows and rows <= {block.absolute(f) for f in firsts}, (firsts, rows)


def test_a_vit_block_is_described_by_its_own_operations() -> None:
    s = summary_of("vit")
    attn = draw(s, view="basic-block", block="blocks.0:1").source
    mlp = draw(s, view="basic-block", block="blocks.0:2").source
    assert "main path: LN-FC-attention-FC" in attn and "post-activation" not in attn
    assert "main path: LN-FC-GELU-FC" in mlp
    assert "attn.qkv\\nFC, 48" in attn and "mlp.fc1" in mlp  # names relative to blocks.0, not clipped
    flow = draw(s, view="gradient-flow").source
    assert "conv-BN-ReLU" not in flow and "transposed convs" not in flow
    assert "LN-FC-attention-FC" in flow


def test_convnext_block_order() -> None:
    s = summary_of("convnext")
    assert all(b.kind is BlockType.OTHER for b in s.blocks)
    assert "main path: conv-LN-FC-GELU-FC" in draw(s, view="basic-block").source


def test_resnet_blocks_keep_the_papers_names() -> None:
    s = summary_of("tv_resnet")
    assert "post-activation" in draw(s, view="basic-block").source
    assert "conv-BN-ReLU" in draw(s, view="gradient-flow").source


def test_measurements_colour_the_layers_of_a_second_residual() -> None:
    """Colouring by activation std finds each layer's measurement through the block's module name:
    every layer node of the ViT's MLP residual (blocks.0:2) gets a fill colour from the trace."""
    fam = family("vit")
    model = fam.build()
    s = resviz.summarize(model, input_size=fam.INPUT)
    tr = resviz.trace(model, input_size=fam.INPUT)
    plain = draw(s, view="basic-block", block="blocks.0:2").source
    coloured = draw(s, view="basic-block", block="blocks.0:2", color_by="std", trace=tr).source
    nodes = [line for line in coloured.splitlines() if "mlp.fc" in line and "label=" in line and "->" not in line]
    assert len(nodes) == 2 and all("fillcolor" in line for line in nodes)
    assert coloured != plain


def test_a_module_named_like_a_suffix_keeps_its_name() -> None:
    """A ModuleDict key may end in ':1' or '#2': the block keeps the module that adds, so its layers'
    names and measurements are still found (nothing is guessed from the block's name)."""
    import torch
    from torch import nn

    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.stages = nn.ModuleDict({"s:1": Res(), "s#2": Res()})
            self.head = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            for stage in self.stages.values():
                x = stage(x)
            return self.head(x.mean((2, 3)))

    model = Net()
    s = resviz.summarize(model, input_size="1x3x8x8")
    assert [(b.name, b.owner) for b in s.blocks] == [("stages.s:1", "stages.s:1"), ("stages.s#2", "stages.s#2")]
    assert s.blocks[0].relative("stages.s:1.conv") == "conv"
    tr = resviz.trace(model, input_size="2x3x8x8")
    dot = draw(s, view="basic-block", block="stages.s:1", color_by="std", trace=tr).source
    node = next(line for line in dot.splitlines() if 'label="conv' in line and "->" not in line)
    assert "fillcolor" in node and "#F7F7F7" not in node
