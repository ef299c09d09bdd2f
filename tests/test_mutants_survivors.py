"""Tests for the mutants a sampled run of ``make mutants`` let through after the re-layering.

Each test names the one-line bug it catches; expected values are computed here, independently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

import resviz
from resviz import api
from resviz.errors import ResvizError
from resviz.measure import stats
from resviz.measure.static import analyze_module
from resviz.model import fastmeta


def test_a_checkpoint_that_is_no_state_dict_is_named_in_the_error(tmp_path: Path) -> None:
    """Bug caught: the error forgetting which file it is about."""
    path = tmp_path / "weights-only-a-list.pt"
    torch.save([torch.zeros(2)], path)
    model = api.build_model("resnet20", device="cpu")
    with pytest.raises(ResvizError, match=r"weights-only-a-list\.pt is not a state dict"):
        api.load_checkpoint(model, path)


class _FunctionalConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 5, 3, 3))

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.conv2d(x, self.weight)


def test_a_channel_mismatch_in_a_users_module_says_how_many_channels_came() -> None:
    """Bug caught: FastMeta's convolution quoting a spatial size as the channel count (``nn.Conv``
    modules are checked before they run; a functional convolution is FastMeta's to check)."""
    model = _FunctionalConv()
    with pytest.raises(ResvizError, match="to have 5 channels, but got 3 channels"):
        analyze_module(model, (1, 3, 9, 11))


class _NoSlowBinary(TorchFunctionMode):
    """Entered below FastMeta: sees only the additions and products FastMeta passes on."""

    def __init__(self) -> None:
        super().__init__()
        self.fell_back = 0

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: Any = None,
    ) -> Any:
        first = args[0] if args else None
        if func in fastmeta._BINARY and isinstance(first, Tensor) and first.device.type == "meta":
            self.fell_back += 1
        return func(*args, **(kwargs or {}))


def test_fastmeta_answers_residual_additions_itself() -> None:
    """Bug caught: two-operand additions falling through to PyTorch's slow Python meta kernels
    (the same shapes, ten times the time on a deep network)."""
    with _NoSlowBinary() as guard:
        s = api.analyze_spec(api.get_spec("resnet20"))
    assert guard.fell_back == 0
    assert sum(1 for lr in s.layers if lr.type == "ResidualAdd") == 9


def test_a_custom_network_of_five_stages_needs_its_widths() -> None:
    """Bug caught: the default widths (four of them) silently stretched to a fifth stage."""
    with pytest.raises(ResvizError, match="more than 4 stages"):
        api.resolve_spec("custom", overrides={"layers": (1, 1, 1, 1, 1)})
    spec = api.resolve_spec("custom", overrides={"layers": (1, 1, 1, 1, 1), "widths": (8, 8, 8, 8, 8)})
    assert spec.widths == (8, 8, 8, 8, 8)


def test_relu_statistics_are_derived_from_their_recorded_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug caught: the ReLU fast path never taken. Every ReLU of resnet20 reads a recorded output
    (a BatchNorm's or an addition's), so every one derives its statistics from that row."""
    buffers: list[stats.LayerStatsBuffer] = []
    real_init = stats.LayerStatsBuffer.__init__

    def spy(self: stats.LayerStatsBuffer, **kw: bool) -> None:
        real_init(self, **kw)
        buffers.append(self)

    monkeypatch.setattr(stats.LayerStatsBuffer, "__init__", spy)
    model = api.build_model("resnet20", device="cpu")
    resviz.trace(model, input_size="2x3x16x16")
    relus = sum(1 for m in model.modules() if isinstance(m, nn.ReLU))
    assert relus == 19 and len(buffers) == 1
    assert len(buffers[0]._derived_rows) == relus


def test_plain_preact_basic_blocks_report_their_main_path() -> None:
    """Bug caught: a plain pre-activation basic block (no addition to hook) losing its main
    operand, so main_rms reads 0. The main operand is the output of its last convolution."""
    model = api.build_model("plain_preact_resnet18", device="cpu")
    outs: dict[str, Tensor] = {}
    for name, m in model.named_modules():
        if name.endswith(".conv2") and name.startswith("layer"):
            m.register_forward_hook(lambda _m, _a, out, name=name: outs.__setitem__(name[: -len(".conv2")], out))
    tr = resviz.trace(model, input_size="2x3x32x32")
    assert len(tr.blocks) == 8
    for b in tr.blocks:
        want = outs[b.name].detach().double().square().mean().sqrt().item()
        assert want > 0 and math.isclose(b.main_rms, want, rel_tol=1e-4), b.name
        assert b.skip_rms == 0.0 and b.grad_skip == 0.0


def test_without_a_backward_pass_no_block_reports_a_gradient() -> None:
    """Bug caught: a plain block reporting a skip gradient of 0.0 when no backward pass ran."""
    tr = resviz.trace("plain20", input_size="2x3x16x16", backward=False)
    assert tr.blocks and all(
        b.grad_main is None and b.grad_skip is None and b.grad_total is None for b in tr.blocks
    )


def test_in_place_modules_run_out_of_place_during_a_trace() -> None:
    """Bug caught: an in-place ReLU left in place, rewriting tensors the hooks read. The flag is off
    while the model runs under the tracer and back on afterwards."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(2, 3, 6, 6))  # materialise the lazy layer
    seen: list[bool] = []
    model[2].register_forward_pre_hook(lambda m, _a: seen.append(m.inplace))
    resviz.trace(model, input_size="2x3x6x6")
    assert seen == [False] and model[2].inplace is True


# --- survivors of a second sample (seed 7) ----------------------------------------------------


def test_a_paper_bottleneck_strides_its_first_1x1() -> None:
    """Bug caught: the 2015 paper's variant striding both the 1x1 and the 3x3 (He et al. 2015 put
    the stride on the first 1x1 of a bottleneck; torchvision on the 3x3)."""
    for name in ("resnet50", "preact_resnet50"):
        spec = api.resolve_spec(name, overrides={"stride_at": "1x1"})
        layers = {lr.name: lr for lr in api.analyze_spec(spec).layers}
        assert layers["layer2.0.conv1"].stride == (2, 2) and layers["layer2.0.conv2"].stride == (1, 1), name
        assert layers["layer2.0.conv2"].output_shape == (1, 128, 28, 28), name
    tv = {lr.name: lr for lr in api.analyze_spec(api.get_spec("resnet50")).layers}
    assert tv["layer2.0.conv1"].stride == (1, 1) and tv["layer2.0.conv2"].stride == (2, 2)


def test_a_mismatched_state_dict_names_a_users_module() -> None:
    """Bug caught: the mismatch message failing on a module that has no spec."""
    from resviz.model.weights import check_state_dict

    with pytest.raises(ResvizError, match="does not match Linear: 1 missing"):
        check_state_dict(nn.Linear(2, 3), {"weight": torch.zeros(3, 2)})


def test_a_linear_layer_on_a_feature_map_is_counted() -> None:
    """Bug caught: FastMeta checking a linear layer's features against the wrong dimension; a
    linear layer reads the last one (channels-last features, tokens)."""
    s = analyze_module(nn.Sequential(nn.Linear(4, 6)), (1, 3, 5, 4))
    assert s.layers[0].output_shape == (1, 3, 5, 6) and s.total_macs == 3 * 5 * 4 * 6


def test_an_unknown_model_suggests_at_most_three_names() -> None:
    with pytest.raises(ResvizError) as info:
        api.get_spec("resnet1")
    suggested = str(info.value).split("did you mean ")[1].rstrip("?").split(", ")
    assert len(suggested) == 3 and all(api.get_spec(n).name == n for n in suggested)


class _WritesNaN(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        y = x.clone()
        y[0, 0, 0, 0] = math.nan
        return y


def test_a_layer_holding_nan_has_no_std() -> None:
    """Bug caught: the std of an output holding NaN printed as 0 instead of NaN."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), _WritesNaN(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(2, 3, 6, 6))
    tr = resviz.trace(model, input_size="2x3x6x6", backward=False)
    layer = tr.layer("1")
    assert layer.nan_count == 1 and math.isnan(layer.std) and math.isnan(layer.mean)
    assert math.isfinite(tr.layer("0").std) and tr.layer("0").std > 0


def test_inputs_and_soft_targets_of_the_wrong_kind_are_named() -> None:
    with pytest.raises(ResvizError, match="inputs must be a tensor, got list"):
        resviz.trace("resnet20", inputs=[1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ResvizError, match="soft targets must have shape 2x10"):
        resviz.trace("resnet20", input_size="2x3x8x8", targets=torch.rand(2, 5))


# --- gaps a third sample (seed 3) showed ------------------------------------------------------


def test_a_constant_output_has_zero_std() -> None:
    """Bug caught: a variance of exactly 0 (a dead layer, a constant map) reported as std 1."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), _Zero(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(2, 3, 6, 6))
    tr = resviz.trace(model, input_size="2x3x6x6", backward=False)
    zero = tr.layer("1")
    assert zero.std == 0.0 and zero.mean == 0.0 and zero.zero_fraction == 1.0


class _Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 0.0


def test_a_bfloat16_model_is_traced_on_a_bfloat16_batch() -> None:
    """Bug caught: the seeded batch made in float32 for a model whose weights are bfloat16."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).to(torch.bfloat16)
    seen: list[torch.dtype] = []
    model[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))
    tr = resviz.trace(model, input_size="2x3x8x8")
    assert seen == [torch.bfloat16] and tr.layers[0].std > 0


def test_bf16_autocast_runs_the_convolutions_in_bfloat16() -> None:
    """Bug caught: autocast entered with float32 instead of the asked dtype (the trace would then
    describe a float32 pass while saying bfloat16)."""
    model = api.build_model("resnet20", device="cpu")
    seen: list[torch.dtype] = []
    model.conv1.register_forward_hook(lambda _m, _a, out: seen.append(out.dtype))
    tr = resviz.trace(model, input_size="2x3x16x16", dtype="bf16")
    assert seen == [torch.bfloat16] and tr.dtype == "bfloat16"


def test_a_mismatch_message_lists_three_keys_and_counts_the_rest() -> None:
    from resviz.model.weights import check_state_dict

    with pytest.raises(ResvizError) as info:
        check_state_dict(nn.Sequential(*[nn.Linear(1, 1, bias=False) for _ in range(6)]), {})
    text = str(info.value)
    assert "6 missing (0.weight; 1.weight; 2.weight and 3 more)" in text and "3.weight" not in text
