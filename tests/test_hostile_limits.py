"""Every bound in resviz.limits: the largest value is accepted, one more is refused in one line that
names the bound. Values at the bound are only validated here, not measured (a 700-block summary
takes seconds)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from resviz import limits
from resviz.api import batch_shape, parse_dims, parse_input_size, trace
from resviz.api.comparing import _check_numbers, compare
from resviz.cli import app
from resviz.dashboard.state import LIMITS
from resviz.errors import ResvizError, clip, quote
from resviz.files import name_max, write_atomic
from resviz.spec import ResNetSpec, load_spec_file

BASIC: dict[str, Any] = {"name": "t", "block": "basic", "layers": [1], "widths": [8]}
BOTTLENECK: dict[str, Any] = {**BASIC, "block": "bottleneck"}


def spec(**changes: Any) -> ResNetSpec:
    base = BOTTLENECK if changes.get("block") == "bottleneck" else BASIC
    return ResNetSpec.from_dict({**base, **changes})


def refused(call: Any, *needles: str) -> str:
    with pytest.raises(ResvizError) as info:
        call()
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, message
    return message


# ----------------------------------------------------------------------------------- the spec
def test_blocks_in_total() -> None:
    assert spec(layers=[limits.MAX_BLOCKS], widths=[16]).depth == 2 * limits.MAX_BLOCKS + 2
    assert spec(layers=[350, 350], widths=[16, 32])
    refused(lambda: spec(layers=[350, 351], widths=[16, 32]),
            "layers: 701 blocks in total, more than the 700 resviz accepts", "ResNet-1202")
    refused(lambda: spec(layers=[1_000_000], widths=[16]), "1000000 blocks in total")


def test_number_of_stages() -> None:
    n = limits.MAX_STAGES
    assert spec(layers=[1] * n, widths=[8] * n).num_stages == n
    refused(lambda: spec(layers=[1] * (n + 1), widths=[8] * (n + 1)), f"{n + 1}", f"more than the {n}")


def test_widths_and_channels() -> None:
    top = limits.MAX_CHANNELS
    assert spec(widths=[top]).stage_out_channels() == (top,)
    refused(lambda: spec(widths=[top + 1]), f"widths[0] = {top + 1}", f"more than the {top}")
    refused(lambda: spec(widths=[10**30]), "widths[0] = 1000000000000000000000000000000")
    assert spec(block="bottleneck", widths=[top // 4]).stage_out_channels() == (top,)
    refused(lambda: spec(block="bottleneck", widths=[top // 4 + 1]), "output channels", f"more than the {top}")
    # torchvision's inner width: widths * width_per_group / 64 * groups
    assert spec(block="bottleneck", widths=[64], width_per_group=512, groups=64).inner_width(0) == top
    refused(lambda: spec(block="bottleneck", widths=[256], width_per_group=64, groups=256),
            "65536 inner channels", f"more than the {top}")


@pytest.mark.parametrize("field", ["stem_width", "in_channels", "groups", "width_per_group"])
def test_channel_fields(field: str) -> None:
    top = limits.MAX_CHANNELS
    if field in ("stem_width", "in_channels"):
        assert getattr(spec(**{field: top}), field) == top
    refused(lambda: spec(block="bottleneck", **{field: top + 1}), f"{field} = {top + 1}", f"more than the {top}")


def test_num_classes() -> None:
    top = limits.MAX_CLASSES
    assert spec(num_classes=top).num_classes == top
    refused(lambda: spec(num_classes=top + 1), f"more than the {top}", "21843")


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"layers": [True]}, "layers[0] = True: must be an integer"),
        ({"layers": [2.0]}, "layers[0] = 2.0: must be an integer"),
        ({"layers": [math.nan]}, "layers[0] = nan"),
        ({"widths": [math.inf]}, "widths[0] = inf"),
        ({"num_classes": True}, "num_classes = True"),
        ({"stem_width": 1e308}, "stem_width = 1e+308"),
        ({"name": "x" * 201}, "more than the 200 characters"),
        ({"name": "two\nlines"}, "printable"),
        ({"name": ["a"] * 1000}, "a list of 1000 items"),
        ({"layers": "3,4"}, "layers must be a list of integers"),
    ],
)
def test_values_of_the_wrong_type_are_refused(changes: dict[str, Any], needle: str) -> None:
    message = refused(lambda: spec(**changes), needle)
    assert len(message) < 300


def test_the_longest_name_is_accepted() -> None:
    assert spec(name="n" * limits.MAX_NAME_CHARS).name == "n" * limits.MAX_NAME_CHARS


# ----------------------------------------------------------------------------------- input sizes
def test_sides_and_elements() -> None:
    side = limits.MAX_SIDE
    assert parse_input_size(f"1x1x{side}x{side}") == (1, 1, side, side)  # exactly MAX_INPUT_ELEMENTS
    assert math.prod((1, 1, side, side)) == limits.MAX_INPUT_ELEMENTS
    refused(lambda: parse_input_size(f"1x2x{side}x{side}"), "8589934592 values", f"more than the {2**32}")
    refused(lambda: parse_input_size(f"1x1x{side + 1}x1"), f"above {side}, the most resviz accepts")
    refused(lambda: parse_input_size("1x3x99999999999999999999x2"), "99999999999999999999", f"above {side}")
    assert parse_input_size("1x3x1024x1024") == (1, 3, 1024, 1024)


def test_channels_and_batch_of_an_input() -> None:
    top = limits.MAX_CHANNELS
    assert parse_input_size(f"1x{top}x1x1")[1] == top
    refused(lambda: parse_input_size(f"1x{top + 1}x1x1"), f"channels {top + 1} is more than the {top}")
    assert batch_shape("3x32x32", limits.MAX_BATCH)[0] == limits.MAX_BATCH
    refused(lambda: batch_shape("3x32x32", limits.MAX_BATCH + 1), f"more than the {limits.MAX_BATCH}")
    refused(lambda: batch_shape("3x32x32", True), "must be an integer")  # type: ignore[arg-type]


def test_a_size_with_too_many_dimensions_is_refused_before_it_is_read() -> None:
    message = refused(lambda: parse_input_size("1x" * 100_000 + "1"), "malformed input size")
    assert len(message) < 300


# ----------------------------------------------------------------------------------- seeds, steps, depth
def test_seeds() -> None:
    assert limits.check_seed(limits.MAX_SEED) == 2**63 - 1
    torch.Generator().manual_seed(limits.MAX_SEED)  # PyTorch takes the largest accepted seed
    refused(lambda: limits.check_seed(2**63), f"more than the {2**63 - 1}")
    refused(lambda: limits.check_seed(-1), "seed = -1: must be at least 0")
    refused(lambda: limits.check_seed(10**5000), "5001-digit number")


def test_a_trace_takes_the_largest_seed_and_refuses_one_more() -> None:
    t = trace("resnet20", input_size="2x3x8x8", seed=limits.MAX_SEED, device="cpu")
    assert t.loss == t.loss
    refused(lambda: trace("resnet20", input_size="2x3x8x8", seed=limits.MAX_SEED + 1, device="cpu"), "seed")


def test_steps_every_and_seed_of_a_comparison() -> None:
    _check_numbers(limits.MAX_STEPS, 0.1, limits.MAX_STEPS, limits.MAX_SEED)
    for kwargs, needle in (
        ({"steps": limits.MAX_STEPS + 1}, "steps = 100001: more than the 100000"),
        ({"every": limits.MAX_STEPS + 1}, "every = 100001"),
        ({"seed": -5}, "seed = -5"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"lr": math.nan}, "learning rate"),
    ):
        refused(lambda kw=kwargs: compare(["resnet20", "plain20"], **kw), needle)  # type: ignore[misc]


def test_depth_option() -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["summary", "resnet20", "-f", "json", "--depth", str(limits.MAX_DEPTH)])
    assert ok.exit_code == 0
    res = runner.invoke(app, ["summary", "resnet20", "--depth", str(limits.MAX_DEPTH + 1)])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and str(limits.MAX_DEPTH) in res.stderr


def test_dashboard_widgets_stay_inside_the_limits() -> None:
    assert LIMITS["seed"][1] <= limits.MAX_SEED and LIMITS["batch"][1] <= limits.MAX_BATCH
    assert LIMITS["input"][1] <= limits.MAX_SIDE and LIMITS["tsize"][1] <= limits.MAX_SIDE
    assert LIMITS["groups"][1] <= limits.MAX_CHANNELS and LIMITS["wpg"][1] <= limits.MAX_CHANNELS


# ----------------------------------------------------------------------------------- files
def test_spec_file_size(tmp_path: Path) -> None:
    text = "name: big\nblock: basic\nlayers: [1]\nwidths: [8]\n"
    exact = tmp_path / "exact.yaml"
    exact.write_text(text + "#" * (limits.MAX_SPEC_BYTES - len(text) - 1) + "\n")
    assert exact.stat().st_size == limits.MAX_SPEC_BYTES and load_spec_file(exact).name == "big"
    over = tmp_path / "over.yaml"
    over.write_text(text + "#" * (limits.MAX_SPEC_BYTES - len(text)) + "\n")
    refused(lambda: load_spec_file(over), f"larger than the {limits.MAX_SPEC_BYTES} bytes")


def test_output_name_length(tmp_path: Path) -> None:
    most = name_max(tmp_path)
    longest = tmp_path / ("a" * (most - 4) + ".dot")
    assert write_atomic(longest, "x").read_text() == "x"  # the temporary file's name is short
    too_long = tmp_path / ("b" * (most - 3) + ".dot")
    refused(lambda: write_atomic(too_long, "x"), f"its name has {most + 1} bytes, more than the {most}")
    wide = tmp_path / ("é" * (most // 2) + ".md")  # two bytes per character: the limit is in bytes
    refused(lambda: write_atomic(wide, "x"), "bytes, more than the")
    assert sorted(os.listdir(tmp_path)) == [longest.name]


def test_clip_and_quote() -> None:
    assert clip("short") == "short"
    assert clip("a\nb") == "a\\nb"
    long = clip("x" * 10_000)
    assert long.endswith("... (10000 characters)") and len(long) < 120
    assert quote("x" * 10_000).startswith("'xxx") and len(quote("x" * 10_000)) < 120
    assert quote(10**400) == "a 401-digit number"
    assert quote([1] * 10_000) == "a list of 10000 items"


# ------------------------------------------------------------------ what int() or YAML would take
@pytest.mark.parametrize("size", ["1_0x3x32x32", "+1x3x32x32", "1x3x٣٢x32", [True, 3, 32, 32]])
def test_sizes_are_plain_decimals_and_integers_not_bools(size: object) -> None:
    refused(lambda: parse_dims(size), "malformed input size")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1:20", "010", "0x10", "1_000", "0o7"])
def test_a_yaml_spec_takes_only_plain_decimal_integers(tmp_path: Path, value: str) -> None:
    """YAML 1.1 would read 1:20 as 80 (base 60), 010 as 8 and 0x10 as 16."""
    path = tmp_path / "s.yaml"
    base = "name: t\nblock: basic\nlayers: [1, 1, 1]\nwidths: [16, 32, 64]\nstem: cifar\n"
    path.write_text(base + f"num_classes: {value}\n")
    refused(lambda: load_spec_file(path), f"num_classes = '{value}': must be a positive integer")
    path.write_text(base + "num_classes: 80\n")
    assert load_spec_file(path).num_classes == 80


def test_empty_data_is_refused_not_read_as_the_current_folder() -> None:
    from resviz.studies.data import data_bytes, load_batches

    refused(lambda: data_bytes("  ", 1, 2, (3, 8, 8)), "no data given")
    refused(lambda: load_batches("", 1, 2, (3, 8, 8)), "no data given")


def test_a_model_returning_a_scalar_is_refused_naming_loss() -> None:
    from torch import nn

    class Summed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).sum()

    refused(lambda: trace(Summed(), input_size=(2, 3, 8, 8)),
            "returns a scalar, not (batch, classes) logits: pass loss=")
    assert len(trace(Summed(), input_size=(2, 3, 8, 8), loss=lambda out, _t: out).layers) == 1
