"""Static analysis on the meta device: shapes, counts, roll-ups, and what it leaves alone."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from resviz.api import summarize
from resviz.errors import ResvizError
from resviz.model.resnet import build_model
from resviz.records import Summary
from resviz.studies.catalog import catalog, count
from resviz.zoo import get_spec, list_models


def test_resnet50_stage_table_matches_the_seed_feature_maps() -> None:
    """shared/seed: 112x112x64, 56x56x256, 28x28x512, 14x14x1024, 7x7x2048, 1x1x2048, 1000."""
    s = summarize("resnet50", input_size="1x3x224x224")
    got = {st.name: st.output_shape[1:] for st in s.stages}
    assert got == {
        "conv1": (64, 112, 112), "conv2_x": (256, 56, 56), "conv3_x": (512, 28, 28),
        "conv4_x": (1024, 14, 14), "conv5_x": (2048, 7, 7), "head": (1000,),
    }
    pool = next(lr for lr in s.layers if lr.name == "avgpool")
    assert pool.output_shape == (1, 2048, 1, 1)
    assert [st.num_blocks for st in s.stages] == [0, 3, 4, 6, 3, 0]


def test_counts_are_per_batch_and_shapes_follow_resolution() -> None:
    one = summarize("resnet18", input_size="1x3x64x64")
    many = summarize("resnet18", input_size="64x3x64x64")
    assert many.total_macs == 64 * one.total_macs
    assert many.total_params == one.total_params
    assert many.layers[0].output_shape == (64, 64, 32, 32)


def test_layer_macs_formulas() -> None:
    s = summarize("resnet18", input_size="2x3x224x224")
    conv1 = s.layers[0]
    assert conv1.macs == 2 * 64 * 112 * 112 * 3 * 7 * 7
    fc = s.layers[-1]
    assert fc.type == "Linear" and fc.macs == 2 * 512 * 1000
    assert all(lr.macs == 0 for lr in s.layers if lr.type in ("BatchNorm2d", "ReLU", "ResidualAdd"))
    add = next(lr for lr in s.layers if lr.type == "ResidualAdd")
    assert add.elementwise == 2 * 64 * 56 * 56 and add.branch == "join"
    assert s.total_flops == 2 * s.total_macs


def test_blocks_branches_and_shortcut_types() -> None:
    s = summarize("resnet20")
    assert len(s.blocks) == 9
    assert [b.shortcut for b in s.blocks].count("zero-pad") == 2
    assert {b.kind for b in s.blocks} == {"basic"}
    skip_rows = [lr for lr in summarize("resnet18").layers if lr.branch == "skip"]
    assert {lr.name.rsplit(".", 1)[0] for lr in skip_rows} == {"layer2.0.downsample", "layer3.0.downsample",
                                                                "layer4.0.downsample"}
    pre = summarize("preact_resnet164")
    assert pre.blocks[0].kind == "preact-bottleneck" and pre.blocks[0].shortcut == "projection"


def test_receptive_field_by_hand_for_resnet18() -> None:
    """conv1 7x7/2: r=7, j=2; max-pool 3x3/2: r=11, j=4; four 3x3 convs at j=4: r=43."""
    stages = {st.name: st for st in summarize("resnet18").stages}
    assert (stages["conv1"].receptive_field, stages["conv1"].jump) == (7, 2)
    assert (stages["conv2_x"].receptive_field, stages["conv2_x"].jump) == (43, 4)
    # conv3_x: first conv 3x3/2 at j=4 (+8), then three 3x3 at j=8 (+48) -> 99
    assert (stages["conv3_x"].receptive_field, stages["conv3_x"].jump) == (99, 8)


def test_summary_round_trips_through_json() -> None:
    import json

    s = summarize("resnet18", input_size="1x3x64x64")
    again = Summary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s


class _UserNet(nn.Module):
    """A torchvision-style block with in-place ReLU and += , as users write them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.downsample = None
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        identity = out
        out = self.conv2(out)
        out += identity
        out = self.relu(out)
        return self.head(out.mean((2, 3)))


def test_user_module_is_analysed_without_being_touched() -> None:
    net = _UserNet().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    s = summarize(net, input_size="2x3x16x16")
    assert s.total_params == sum(p.numel() for p in net.parameters())
    assert s.total_macs == 2 * 8 * 16 * 16 * 27 + 2 * 8 * 16 * 16 * 72 + 2 * 8 * 5
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_input_too_small_names_the_layer() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 5))
    with pytest.raises(ResvizError, match=r"too small.*at 2 \(input 1x4x2x2\)"):
        summarize(net, input_size="1x3x6x6")


def test_tiny_input_to_a_resnet_is_noted_not_an_error() -> None:
    s = summarize("resnet50", input_size="1x3x16x16")
    assert any("smaller than the network's total stride" in n for n in s.notes)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("3x224", "malformed"), ("1x3x224x224x2", "malformed"), ("1x3xax2", "malformed"),
        ("0x3x32x32", "below 1"), ("1x4x224x224", "channels"),
    ],
)
def test_bad_input_sizes(size: str, message: str) -> None:
    with pytest.raises(ResvizError, match=message):
        summarize("resnet18", input_size=size)


def test_wrong_channels_for_a_user_module_names_the_conv() -> None:
    with pytest.raises(ResvizError, match=r"0 \(Conv2d\) expects 3 input channels but gets 1"):
        summarize(nn.Sequential(nn.Conv2d(3, 4, 3)), input_size="1x1x8x8")


def test_static_cost_does_not_allocate_activations() -> None:
    """A 256x3x1024x1024 input (3 GiB in float32) is analysed without memory for it."""
    import tracemalloc

    tracemalloc.start()
    s = summarize("resnet18", input_size="256x3x1024x1024")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert s.activation_bytes > 10 * 2**30
    assert peak < 200 * 2**20


def test_build_on_meta_then_cpu_match_in_structure() -> None:
    spec = dataclasses.replace(get_spec("resnet50"), layers=(1, 1, 1, 1))
    meta, cpu = build_model(spec, device="meta"), build_model(spec, device="cpu")
    assert [n for n, _ in meta.named_modules()] == [n for n, _ in cpu.named_modules()]


def test_stored_catalog_matches_a_fresh_count() -> None:
    """The stored file itself (``catalog()`` would count a missing entry afresh and hide it)."""
    from resviz.studies.catalog import _stored

    stored = _stored()
    assert set(stored) == set(list_models(include_plain=True))
    rows = {r.name: r for r in catalog(include_plain=True)}
    for name in list_models(include_plain=True):
        assert stored[name] == count(name), name
        assert (rows[name].params, rows[name].macs) == (stored[name]["params"], stored[name]["macs"]), name


def test_three_dimensions_mean_one_image() -> None:
    assert summarize("resnet18", input_size="3x64x64").input_shape == (1, 3, 64, 64)
