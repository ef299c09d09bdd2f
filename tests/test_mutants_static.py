"""Static-analysis values that surviving mutants showed to be unchecked, each pinned to a number
computed here: receptive fields, block kinds, labels and error messages of ``resviz.summarize``."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import resviz
from resviz.errors import ResvizError
from resviz.measure.static import analyze_module
from resviz.records import SMALL_INPUT_NOTE
from resviz.spec import BlockKind

# -- receptive field and jump (resnet18) ---------------------------------------------------------------


def _resnet18_receptive_fields() -> dict[str, tuple[int, int]]:
    """Receptive field r and jump j at the end of each stage of resnet18 (He et al. 2015, Table 1),
    along the main path: r += (k - 1) * j, j *= s per window; the global average pool sees the whole
    7x7 map that reaches it at 224x224, so it adds (7 - 1) * j."""
    r, j = 1, 1
    out: dict[str, tuple[int, int]] = {}

    def window(k: int, s: int) -> None:
        nonlocal r, j
        r += (k - 1) * j
        j *= s

    window(7, 2)  # conv1
    out["conv1"] = (r, j)
    window(3, 2)  # max-pool, listed at the top of conv2_x
    for stage, first_stride in (("conv2_x", 1), ("conv3_x", 2), ("conv4_x", 2), ("conv5_x", 2)):
        for block in range(2):  # two basic blocks per stage
            window(3, first_stride if block == 0 else 1)
            window(3, 1)
        out[stage] = (r, j)
    side = 224 // 32  # the map the global pool sees
    window(side, 1)
    out["head"] = (r, j)
    return out


def test_resnet18_receptive_field_and_jump_per_stage() -> None:
    want = _resnet18_receptive_fields()
    assert want["conv5_x"] == (435, 32) and want["head"] == (627, 32)  # the hand-derived values
    summ = resviz.summarize("resnet18")
    got = {s.name: (s.receptive_field, s.jump) for s in summ.stages}
    assert got == want


# -- block kind -------------------------------------------------------------------------------------------


class _TwoConvBottleneck(nn.Module):
    """A torchvision-style block that declares itself a bottleneck but has no ``conv3``: its
    ``kind`` attribute, not the presence of ``conv3``, decides what it is."""

    kind = BlockKind.BOTTLENECK

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c // 4, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c // 4)
        self.conv2 = nn.Conv2d(c // 4, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.downsample = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + x)


class _BasicWithSpareConv3(_TwoConvBottleneck):
    """The opposite disagreement: ``kind`` says basic, yet a (never called) ``conv3`` exists."""

    kind = BlockKind.BASIC

    def __init__(self, c: int) -> None:
        super().__init__(c)
        self.conv3 = nn.Conv2d(c, c, 1)


class _Net(nn.Module):
    def __init__(self, block: type[nn.Module]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.layer1 = nn.Sequential(block(16))
        self.fc = nn.Linear(16, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.layer1(self.conv1(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize(("block", "want"), [(_TwoConvBottleneck, "bottleneck"), (_BasicWithSpareConv3, "basic")])
def test_block_kind_follows_the_kind_attribute(block: type[nn.Module], want: str) -> None:
    summ = resviz.summarize(_Net(block), input_size="1x3x8x8")
    assert [(b.name, b.kind) for b in summ.blocks] == [("layer1.0", want)]


# -- labels -----------------------------------------------------------------------------------------------


class MyLittleNet(nn.Module):
    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, k)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_a_module_without_spec_or_label_is_named_by_its_class() -> None:
    assert resviz.summarize(MyLittleNet()).model == "MyLittleNet"
    # The static pass's own default (every public caller passes a label; this pins the fallback).
    summ = analyze_module(MyLittleNet(), (1, 3, 16, 16))
    assert summ.model == "MyLittleNet" and summ.input_shape == (1, 3, 16, 16)
    # the conv's output is 14x14 (16 - 3 + 1): parameters and MACs counted here
    assert summ.total_params == (4 * 3 * 9 + 4) + (2 * 4 + 2)
    assert summ.total_macs == 4 * 14 * 14 * 3 * 9 + 2 * 4


def test_an_input_too_small_names_the_model() -> None:
    with pytest.raises(ResvizError) as info:
        resviz.summarize(MyLittleNet(k=5), input_size="1x3x3x3")
    msg = str(info.value)
    assert "too small for MyLittleNet" in msg and "1x3x3x3" in msg and "conv" in msg
    with pytest.raises(ResvizError) as direct:
        analyze_module(MyLittleNet(k=5), (1, 3, 3, 3), label="my-net")
    assert "too small for my-net" in str(direct.value)


def test_the_static_pass_leaves_the_module_untouched() -> None:
    model = MyLittleNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    resviz.summarize(model, input_size="2x3x16x16")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].device.type == "cpu" for k in before)


# -- roll-ups and totals ------------------------------------------------------------------------------------


def test_block_params_and_macs_equal_the_blocks_own_layers() -> None:
    """Per block: parameters from the module itself, MACs from a real CPU forward (each conv's
    output elements times its inputs per output, in/groups x kh x kw)."""
    model = resviz.build_model("resnet20", device="cpu").eval()
    macs: dict[str, int] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            def hook(m: nn.Conv2d, _a: object, out: Tensor, name: str = name) -> None:
                macs[name] = out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

            handles.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    for h in handles:
        h.remove()
    summ = resviz.summarize(model)
    mods = dict(model.named_modules())
    assert len(summ.blocks) == 9
    for b in summ.blocks:
        assert b.params == sum(p.numel() for p in mods[b.name].parameters()), b.name
        assert b.macs == sum(v for n, v in macs.items() if n.startswith(b.name + ".")), b.name
    assert [s.num_blocks for s in summ.stages] == [0, 3, 3, 3, 0]


class _Tied(nn.Module):
    """A frozen stem and an output layer tied to an input embedding, in bfloat16."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3)
        self.stem.requires_grad_(False)
        self.proj = nn.Linear(6, 6, bias=False)
        self.back = nn.Linear(6, 6, bias=False)
        self.back.weight = self.proj.weight  # one tensor, two names

    def forward(self, x: Tensor) -> Tensor:
        return self.back(self.proj(self.stem(x).mean(dim=(2, 3))))


def test_totals_count_shared_parameters_once_and_frozen_ones_as_untrainable() -> None:
    stem, shared = 6 * 3 * 9 + 6, 6 * 6
    with torch.device("meta"):  # a model already on meta runs as it is
        tied, tied_half = _Tied(), _Tied().to(torch.bfloat16)
    summ = resviz.summarize(tied, input_size="1x3x8x8")
    assert (summ.total_params, summ.trainable_params) == (stem + shared, shared)
    assert summ.param_bytes == 4 * (stem + shared)
    assert resviz.summarize(tied_half, input_size="1x3x8x8").param_bytes == 2 * (stem + shared)


def test_a_real_model_with_tied_weights_can_be_summarized() -> None:
    summ = resviz.summarize(_Tied(), input_size="1x3x8x8")
    assert summ.total_params == 6 * 3 * 9 + 6 + 6 * 6


def test_small_input_note_names_the_first_stride_on_a_1x1_map() -> None:
    # resnet18 at 16x16: conv1 -> 8, max-pool -> 4, layer2 -> 2, layer3 -> 1, so layer4.0 downsamples 1x1
    notes = [n for n in resviz.summarize("resnet18", input_size="1x3x16x16").notes if n.startswith(SMALL_INPUT_NOTE)]
    assert notes == [f"{SMALL_INPUT_NOTE}: layer4.0.conv1 downsamples a 1x1 map, so deeper stages see padding only"]
    # at 32x32 layer4.0 sees 2x2: no note
    assert not any(n.startswith(SMALL_INPUT_NOTE) for n in resviz.summarize("resnet18", input_size="1x3x32x32").notes)
