"""Statistics, records and user errors of ``resviz.trace``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import resviz
from resviz.errors import ResvizError
from resviz.measure.stats import HIST_EDGES, HIST_SAMPLE
from resviz.model.resnet import build_model
from resviz.records import Trace


def _tiny() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 8 * 8, 4),
    )


def test_layer_statistics_match_direct_computation() -> None:
    model = _tiny()
    x = torch.randn(4, 3, 8, 8)
    tr = resviz.trace(model, inputs=x)
    assert [lr.name for lr in tr.layers] == ["0", "1", "2", "3", "4"]
    with torch.no_grad():  # the trace restored the BN statistics, so this is the same forward
        outs = [x]
        for m in model:
            outs.append(m(outs[-1]))
    for lr, y in zip(tr.layers, outs[1:], strict=True):
        assert lr.output_shape == tuple(y.shape)
        assert lr.mean == pytest.approx(float(y.mean()), abs=1e-5)
        assert lr.std == pytest.approx(float(y.std()), rel=1e-4, abs=1e-6)
        assert lr.min == pytest.approx(float(y.min()))
        assert lr.max == pytest.approx(float(y.max()))
        assert lr.rms == pytest.approx(float(y.square().mean().sqrt()), rel=1e-5)
        assert lr.zero_fraction == pytest.approx(float((y == 0).float().mean()))
        assert len(lr.hist_edges) == len(lr.hist_counts) + 1 and lr.hist_edges == HIST_EDGES
        assert sum(lr.hist_counts) == min(y.numel(), HIST_SAMPLE)
    relu = tr.layer("2")
    assert 0.3 < relu.zero_fraction < 0.7 and relu.min == 0.0
    assert tr.blocks == () and any("no residual blocks" in n for n in tr.notes)
    assert tr.layer("0").params == 6 * 3 * 9 + 6 and tr.layer("0").macs == 4 * 6 * 64 * 27


def test_trace_fields_and_json_round_trip() -> None:
    tr = resviz.trace("resnet20", input_size="2x3x32x32")
    assert tr.model == "resnet20" and tr.input_shape == (2, 3, 32, 32)
    assert tr.device == "cpu" and tr.dtype == "float32" and tr.torch_version == torch.__version__
    assert [b.index for b in tr.blocks] == list(range(9))
    assert tr.blocks[0].name == "layer1.0" and tr.blocks[0].stage == "conv2_x"
    assert {b.shortcut for b in tr.blocks} == {"identity", "zero-pad"}
    assert tr.loss is not None and 1.0 < tr.loss < 5.0
    block_layers = [lr for lr in tr.layers if lr.block == "layer2.0"]
    assert {lr.branch for lr in block_layers} >= {"main", "join"}
    p = tr.params[0]
    assert p.ratio == pytest.approx(p.grad_norm / p.weight_norm)  # type: ignore[operator]
    text = json.dumps(tr.to_dict(), allow_nan=False)
    assert Trace.from_dict(json.loads(text)) == tr


def test_forward_only() -> None:
    tr = resviz.trace("resnet20", input_size="2x3x32x32", backward=False)
    assert all(b.grad_main is None and b.grad_skip is None and b.grad_total is None for b in tr.blocks)
    assert all(p.grad_norm is None and p.ratio is None for p in tr.params)
    assert all(b.main_rms > 0 for b in tr.blocks)


def test_bf16_autocast_on_cpu() -> None:
    tr = resviz.trace("resnet20", input_size="2x3x32x32", dtype="bf16")
    assert tr.dtype == "bfloat16"
    assert all(math.isfinite(b.grad_total or math.nan) for b in tr.blocks)


def test_user_targets_and_loss() -> None:
    model = build_model("resnet20", device="cpu")
    x = torch.randn(3, 3, 32, 32)
    t = torch.tensor([1, 2, 3])
    a = resviz.trace(model, inputs=x, targets=t)
    b = resviz.trace(model, inputs=x, targets=t, loss=lambda out, tt: nn.functional.cross_entropy(out, tt))
    assert a.loss == pytest.approx(b.loss)
    c = resviz.trace(model, inputs=x, loss=lambda out, _: out.square().mean())
    assert c.loss != pytest.approx(a.loss)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nonfinite_activations_are_flagged_not_fatal(bad: str) -> None:
    model = build_model("resnet20", device="cpu")
    x = torch.randn(2, 3, 32, 32)
    x[0, 0, 5, 5] = float(bad)
    tr = resviz.trace(model, inputs=x)
    conv1 = tr.layer("conv1")
    if bad == "nan":
        assert conv1.nan_count > 0 and conv1.inf_count == 0
    else:
        assert conv1.inf_count > 0
    assert tr.notes and tr.notes[0].startswith("first NaN/Inf in conv1")
    json.dumps(tr.to_dict(), allow_nan=False)


def _one_line_error(fn: object, match: str) -> None:
    with pytest.raises(ResvizError, match=match) as info:
        fn()  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_bad_inputs_raise_one_line_errors() -> None:
    model = build_model("resnet20", device="cpu")
    _one_line_error(lambda: resviz.trace(model, inputs=torch.randn(2, 4, 32, 32)), "input channels")
    _one_line_error(lambda: resviz.trace(model, inputs=torch.randn(3, 32, 32)), "4 dimensions")
    _one_line_error(lambda: resviz.trace(model, inputs=torch.zeros(2, 3, 32, 32, dtype=torch.long)), "floating")
    _one_line_error(lambda: resviz.trace(model, inputs=torch.randn(2, 3, 32, 32).double()), "float64")
    _one_line_error(lambda: resviz.trace(model, input_size="2x3x32x32", targets=torch.tensor([0, 10])), "out of range")
    _one_line_error(lambda: resviz.trace(model, input_size="2x3x32x32", targets=torch.tensor([0])), "class indices")
    _one_line_error(lambda: resviz.trace(model, input_size="2x3x32x32", dtype="int8"), "unknown dtype")
    _one_line_error(lambda: resviz.trace(model, input_size="2x3x32x32", dtype="fp16"), "CUDA")
    _one_line_error(lambda: resviz.trace("resnet20", input_size="2x3x0x32"), "below 1")
    _one_line_error(lambda: resviz.trace("nosuchnet"), "nosuchnet")
    _one_line_error(lambda: resviz.trace(model, input_size="2x3x32x32", loss=lambda o, t: o), "scalar")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_absent() -> None:
    _one_line_error(lambda: resviz.trace("resnet20", device="cuda"), "CUDA")


class _OOM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_suggests_a_smaller_batch() -> None:
    _one_line_error(lambda: resviz.trace(_OOM(), input_size="4x3x8x8"), "smaller")


class _EditsBeforeReLU(nn.Module):
    """A ReLU whose input is a recorded output edited in place (torchvision's ``out += identity``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y += 5.0
        return self.relu(y).mean(dim=(2, 3))


def test_statistics_of_outputs_larger_than_one_chunk() -> None:
    """Outputs of several chunks (CPU path): every number and the sampled histogram agree with a
    direct computation, also the ReLU's min/max derived from its input. This model has no residual
    block, so statistics are not deferred and BatchNorm's saved statistics are not used: that path
    is tested in tests/test_fastpaths.py."""
    from resviz.measure.stats import CHUNK, HIST_BINS, HIST_HI, HIST_LO, sample

    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten())
    with torch.no_grad():  # non-trivial affine terms for the BatchNorm moments taken from autograd
        model[1].weight.uniform_(0.5, 2.0)
        model[1].bias.uniform_(-1.0, 1.0)
    x = torch.randn(3, 3, 96, 96)
    assert 3 * CHUNK < 16 * 3 * 96 * 96
    tr = resviz.trace(model, inputs=x, loss=lambda out, _t: out.square().mean())
    with torch.no_grad():
        outs = [x]
        for m in model:
            outs.append(m(outs[-1]))
    for lr, y in zip(tr.layers, outs[1:], strict=True):
        v = y.reshape(-1)
        assert lr.mean == pytest.approx(float(v.double().mean()), abs=1e-5)
        assert lr.rms == pytest.approx(float(v.double().square().mean().sqrt()), rel=1e-5)
        assert (lr.min, lr.max) == (float(v.min()), float(v.max()))
        assert lr.zero_fraction == pytest.approx(float((v == 0).double().mean()), abs=1e-12)
        want = torch.histc(sample(v).clamp(HIST_LO, HIST_HI), HIST_BINS, HIST_LO, HIST_HI)
        assert lr.hist_counts == tuple(int(c) for c in want.tolist())


def test_relu_after_an_in_place_edit_is_measured_not_derived() -> None:
    model = _EditsBeforeReLU()
    x = torch.randn(2, 3, 8, 8)
    tr = resviz.trace(model, inputs=x, loss=lambda out, _t: out.sum())
    with torch.no_grad():
        c = model.conv(x)
        y = torch.relu(c + 5.0)
    assert tr.layer("conv").mean == pytest.approx(float(c.mean()), abs=1e-5)  # before the edit
    assert tr.layer("relu").min == pytest.approx(float(y.min()))
    assert tr.layer("relu").max == pytest.approx(float(y.max()))


def test_block_rms_reuses_the_layer_norms() -> None:
    """The main addend is the last BatchNorm's output: the block's main RMS is that layer's RMS."""
    tr = resviz.trace("resnet20", input_size="2x3x32x32")
    for b in tr.blocks:
        assert b.main_rms == pytest.approx(tr.layer(f"{b.name}.bn2").rms, rel=1e-6)
        if b.shortcut == "identity":
            assert b.skip_rms > 0


def test_channels_last_on_cpu_gives_the_same_statistics() -> None:
    """channels_last is a memory layout, not a different computation: on CPU it is applied too,
    and every statistic matches the default layout to float tolerance."""
    model = build_model("resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = resviz.trace(model, input_size="2x3x32x32")
    b = resviz.trace(model, input_size="2x3x32x32", channels_last=True)
    assert [lr.name for lr in a.layers] == [lr.name for lr in b.layers]
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert lb.rms == pytest.approx(la.rms, rel=1e-4, abs=1e-6)
        assert lb.max == pytest.approx(la.max, rel=1e-4, abs=1e-5)
        assert lb.zero_fraction == pytest.approx(la.zero_fraction, abs=1e-3)
    for ba, bb in zip(a.blocks, b.blocks, strict=True):
        assert bb.grad_total == pytest.approx(ba.grad_total, rel=1e-3)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_json_round_trip_keeps_names_that_read_as_numbers() -> None:
    """Only float fields turn "nan"/"inf" back into floats: a layer may be called ``nan``."""
    import dataclasses

    tr = resviz.trace("resnet20", input_size="2x3x16x16")
    odd = dataclasses.replace(tr.layers[0], name="nan", mean=float("nan"), max=float("inf"))
    tr = dataclasses.replace(tr, layers=(odd, *tr.layers[1:]))
    back = Trace.from_dict(json.loads(json.dumps(tr.to_dict())))
    assert back.layers[0].name == "nan" and math.isnan(back.layers[0].mean) and back.layers[0].max == math.inf
    assert back.layers[1:] == tr.layers[1:] and back.blocks == tr.blocks
    assert back.block("layer2.0") == tr.blocks[3] and back.layer("nan") == back.layers[0]
    with pytest.raises(KeyError):
        back.block("layer9.0")


def test_more_bad_inputs_raise_one_line_errors() -> None:
    """BatchNorm's ValueError, targets of the wrong kind, empty batches, sizes that are not integers."""
    _one_line_error(lambda: resviz.trace("resnet20", input_size="1x3x1x1"), "fails on input 1x3x1x1 at bn1")
    _one_line_error(lambda: resviz.trace("resnet20", input_size="2x3x8x8", targets=[0, 1]), "tensor of class")
    _one_line_error(
        lambda: resviz.trace("resnet20", input_size="2x3x8x8", targets=torch.tensor([True, False])), "torch.bool",
    )
    model = build_model("resnet20", device="cpu")
    _one_line_error(lambda: resviz.trace(model, inputs=torch.randn(0, 3, 8, 8)), "hold no values")
    for size in ([2, 3, "a", 8], 32, [2, 3, 8.5, 8]):
        _one_line_error(lambda size=size: resviz.trace("resnet20", input_size=size), "malformed input size")
    _one_line_error(lambda: resviz.trace(model, input_size="2x3x8x8", loss=lambda o, t: o.sum(dim=9)), "in the loss")
