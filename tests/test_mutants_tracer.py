"""Tracer values that surviving mutants showed to be unchecked, each compared with a number
computed here: addend RMS of every kind of block, derived ReLU and BatchNorm statistics, default
input sizes, branch labels and the exact wording of user errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz
from resviz.errors import ResvizError
from resviz.measure import fastpaths, layers
from resviz.measure.monitor import Monitor
from resviz.model.resnet import build_model
from resviz.records import Trace


def _rms(t: Tensor) -> float:
    return float(t.detach().double().square().mean().sqrt())


# -- a torchvision-style network (in-place ReLU, ``out += identity``) -----------------------------------


class _ScaledConv(nn.Conv2d):
    """A convolution called with an extra positional argument, ``conv(x, scale)``."""

    def forward(self, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        return super().forward(x) * scale


class _TVBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, scaled: bool = False) -> None:
        super().__init__()
        conv = _ScaledConv if scaled else nn.Conv2d
        self.scaled = scaled
        self.conv1 = conv(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: Any = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.conv1(x, 0.5) if self.scaled else self.conv1(x)
        out = self.relu(self.bn1(out))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class _TVNet(nn.Module):
    def __init__(self, scaled: bool = False, stem_stride: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(_TVBlock(8, 8, 1, scaled), _TVBlock(8, 16, 2, scaled))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.avgpool(self.layer1(x)), 1))


@contextmanager
def _capture(model: nn.Module, hooks: dict[str, str]) -> Iterator[dict[str, list[Tensor]]]:
    """Copies, taken during the traced forward itself, of ``out`` (a module's output) or ``args``
    (a module's positional inputs) of the named modules."""
    got: dict[str, list[Tensor]] = {}
    mods = dict(model.named_modules())
    handles = []
    for name, what in hooks.items():
        if what == "out":
            def out_hook(_m: nn.Module, _a: Any, out: Tensor, name: str = name) -> None:
                got[name] = [out.detach().clone()]

            handles.append(mods[name].register_forward_hook(out_hook))
        else:
            def args_hook(_m: nn.Module, args: tuple[Tensor, ...], name: str = name) -> None:
                got[name] = [a.detach().clone() for a in args]

            handles.append(mods[name].register_forward_pre_hook(args_hook))
    try:
        yield got
    finally:
        for h in handles:
            h.remove()


# -- addend RMS per kind of block ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet20", "plain20"])
def test_resviz_block_addends_match_the_operands_of_the_addition(name: str) -> None:
    model = build_model(name, device="cpu")
    blocks = [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3)]
    plain = name.startswith("plain")
    # the residual addition's two operands; a plain block's main output is its last BN (no add)
    hooks = {f"{b}.bn2": "out" for b in blocks} if plain else {f"{b}.add": "args" for b in blocks}
    x = torch.randn(2, 3, 16, 16)
    with _capture(model, hooks) as got:
        tr = resviz.trace(model, inputs=x)
    assert [b.name for b in tr.blocks] == blocks
    for b in tr.blocks:
        if plain:
            assert b.main_rms == pytest.approx(_rms(got[f"{b.name}.bn2"][0]), rel=1e-5)
            assert b.skip_rms == 0.0 and b.shortcut == "none"
            assert b.grad_skip == 0.0 and b.grad_main == b.grad_total and b.grad_total is not None
        else:
            main, skip = got[f"{b.name}.add"]
            assert b.main_rms == pytest.approx(_rms(main), rel=1e-5)
            assert b.skip_rms == pytest.approx(_rms(skip), rel=1e-5)


def test_torchvision_style_block_addends() -> None:
    model = _TVNet()
    hooks = {"layer1.0.bn2": "out", "layer1.1.bn2": "out", "layer1.0": "args", "layer1.1.downsample": "out"}
    with _capture(model, hooks) as got:
        tr = resviz.trace(model, inputs=torch.randn(2, 3, 8, 8))
    b0, b1 = tr.blocks
    assert (b0.name, b0.shortcut, b1.name, b1.shortcut) == ("layer1.0", "identity", "layer1.1", "projection")
    assert b0.main_rms == pytest.approx(_rms(got["layer1.0.bn2"][0]), rel=1e-5)
    assert b0.skip_rms == pytest.approx(_rms(got["layer1.0"][0]), rel=1e-5)
    assert b1.main_rms == pytest.approx(_rms(got["layer1.1.bn2"][0]), rel=1e-5)
    assert b1.skip_rms == pytest.approx(_rms(got["layer1.1.downsample"][0]), rel=1e-5)


def test_conv1_called_with_extra_arguments_is_traced_unchanged() -> None:
    """The tracer hands ``conv1`` its own view of x and must pass the other arguments on."""
    model = _TVNet(scaled=True)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 7])
    with _capture(model, {"layer1.0.conv1": "out", "layer1.1.conv1": "out"}) as got:
        tr = resviz.trace(model, inputs=x, targets=t)
    with torch.no_grad():  # BatchNorm buffers were restored; train mode: the same batch statistics
        want_loss = float(F.cross_entropy(model(x), t))
        y = model.relu(model.bn1(model.conv1(x)))
        weight = model.get_parameter("layer1.0.conv1.weight")
        conv1_out = F.conv2d(y, weight, padding=1) * 0.5
    assert tr.loss == pytest.approx(want_loss, rel=1e-5)
    assert torch.allclose(got["layer1.0.conv1"][0], conv1_out, atol=1e-6)
    assert tr.layer("layer1.0.conv1").rms == pytest.approx(_rms(conv1_out), rel=1e-5)


def _identity_then_pool(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 2)


class _FunctionShortcutBlock(_TVBlock):
    """A torchvision-style block whose ``downsample`` is a plain function, not a module: the skip
    addend is found and measured from the computation all the same."""

    def __init__(self) -> None:
        super().__init__(8, 8, 2)
        del self.downsample
        self.downsample = _identity_then_pool


def test_block_without_a_recorded_skip_addend() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _FunctionShortcutBlock(), nn.Flatten(), nn.LazyLinear(4))
    model(torch.randn(2, 3, 8, 8))  # materialise the lazy layer
    with _capture(model, {"1.bn2": "out", "0": "out"}) as got:
        tr = resviz.trace(model, inputs=torch.randn(2, 3, 8, 8))
    (b,) = tr.blocks
    assert b.name == "1" and b.shortcut == "pooled"
    assert b.main_rms == pytest.approx(_rms(got["1.bn2"][0]), rel=1e-5)
    assert b.skip_rms == pytest.approx(_rms(F.avg_pool2d(got["0"][0], 2)), rel=1e-5)
    assert b.grad_skip is not None and b.grad_total is not None


# -- derived statistics ------------------------------------------------------------------------------


def test_relu_of_a_relu_statistics() -> None:
    """The first ReLU's min/max are derived from the conv's; the second ReLU must not derive its own
    from the first's (not reduced yet) row."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3))
    x = torch.randn(2, 3, 8, 8)
    with fastpaths.fast_paths(True), _capture(model, {"0": "out", "1": "out", "2": "out"}) as got:
        tr = resviz.trace(model, inputs=x)
    assert tr.notes == ("Sequential has no residual blocks",)
    for name in ("0", "1", "2"):
        y, lr = got[name][0], tr.layer(name)
        assert lr.min == pytest.approx(float(y.min()), abs=1e-6) and lr.max == pytest.approx(float(y.max()), rel=1e-6)
        assert lr.mean == pytest.approx(float(y.mean()), abs=1e-6)
        assert lr.rms == pytest.approx(_rms(y), rel=1e-5)
        assert lr.nan_count == 0 and lr.inf_count == 0
    assert tr.layer("2").min == 0.0 and tr.layer("2").max > 0.0


def test_batchnorm1d_on_features_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = build_model("resnet20", device="cpu")
    bn = nn.BatchNorm1d(64)
    model.fc = nn.Sequential(bn, nn.Linear(64, 10))  # type: ignore[assignment]
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    model.train()
    used: dict[str, bool] = {}
    real = layers.batchnorm_moments

    def spy(module: nn.Module, x: Tensor, out: Tensor) -> Any:
        got = real(module, x, out)
        used[type(module).__name__] = used.get(type(module).__name__, True) and got is not None
        return got

    monkeypatch.setattr(layers, "batchnorm_moments", spy)
    with fastpaths.fast_paths(True), _capture(model, {"fc.0": "out"}) as got:
        tr = resviz.trace(model, inputs=torch.randn(4, 3, 16, 16))
    assert used == {"BatchNorm2d": True, "BatchNorm1d": True}
    y, lr = got["fc.0"][0], tr.layer("fc.0")
    assert lr.output_shape == (4, 64)
    assert lr.mean == pytest.approx(float(y.double().mean()), abs=1e-5)
    assert lr.rms == pytest.approx(_rms(y), rel=1e-5)
    assert lr.std == pytest.approx(float(y.double().std()), rel=1e-4)


# -- models and inputs -----------------------------------------------------------------------------------


def test_a_model_without_parameters_traces_on_cpu() -> None:
    model = nn.Sequential(nn.ReLU(), nn.Flatten())
    x = torch.randn(2, 3, 4, 4)
    tr = resviz.trace(model, inputs=x, loss=lambda out, _t: out.square().mean())
    assert tr.device == "cpu" and tr.params == ()
    assert tr.loss == pytest.approx(float(F.relu(x).square().mean()), rel=1e-6)
    assert tr.layer("0").max == pytest.approx(float(x.max()))
    tr2 = resviz.trace(model, input_size="2x3x4x4", loss=lambda out, _t: out.sum())
    assert tr2.input_shape == (2, 3, 4, 4) and tr2.device == "cpu"


def test_default_trace_input_is_the_models_image_at_batch_2() -> None:
    assert resviz.trace("resnet20", backward=False).input_shape == (2, 3, 32, 32)
    tv = resviz.trace(_TVNet(stem_stride=8), backward=False)
    assert tv.input_shape == (2, 3, 224, 224) and tv.layer("conv1").output_shape == (2, 8, 28, 28)


def test_branch_of_every_traced_layer() -> None:
    tr = resviz.trace("resnet20", input_size="2x3x8x8", backward=False)
    outside = {lr.name: lr.branch for lr in tr.layers if not lr.block}
    assert outside == {"conv1": "", "bn1": "", "relu": "", "avgpool": "", "fc": ""}
    inside = {lr.name: lr.branch for lr in tr.layers if lr.block == "layer2.0"}
    assert inside == {
        "layer2.0.conv1": "main", "layer2.0.bn1": "main", "layer2.0.relu1": "main", "layer2.0.conv2": "main",
        "layer2.0.bn2": "main", "layer2.0.downsample": "skip", "layer2.0.add": "join", "layer2.0.relu2": "main",
    }
    tv = resviz.trace(_TVNet(), input_size="2x3x8x8", backward=False)
    assert {lr.name: lr.branch for lr in tv.layers if not lr.block} == {
        "conv1": "", "bn1": "", "relu": "", "avgpool": "", "fc": "",
    }
    assert tv.layer("layer1.1.downsample.0").branch == "skip" and tv.layer("layer1.1.conv2").branch == "main"


# -- messages -----------------------------------------------------------------------------------------------


def test_targets_out_of_range_message_gives_the_valid_range() -> None:
    model = build_model("resnet20", device="cpu")
    with pytest.raises(ResvizError) as info:
        resviz.trace(model, input_size="2x3x8x8", targets=torch.tensor([0, 10]))
    assert str(info.value) == "targets out of range: got 0..10, the model has 10 classes (0..9)"


class _OOM(nn.Module):
    def __init__(self, exc: Callable[[], BaseException]) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.exc = exc

    def forward(self, x: Tensor) -> Tensor:
        raise self.exc()


@pytest.mark.parametrize("exc", [
    lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 bytes"),
])
def test_out_of_memory_names_the_batch(exc: Callable[[], BaseException]) -> None:
    with pytest.raises(ResvizError) as info:
        resviz.trace(_OOM(exc), input_size="4x3x8x8")
    assert str(info.value) == "out of memory tracing _OOM at batch 4 on cpu: try a smaller --input"


# -- the monitor's cleanup ---------------------------------------------------------------------------------


def test_detaching_a_monitor_that_never_attached_leaves_the_model_alone() -> None:
    model = _TVNet()
    inplace = [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)]
    mon = Monitor(model, every=1)
    mon.detach()
    assert mon.steps == ()
    assert [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)] == inplace == [True] * 3
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    # and it still works afterwards, for a real attach/detach
    mon.attach()
    F.cross_entropy(model(torch.randn(2, 3, 8, 8)), torch.tensor([1, 2])).backward()
    mon.detach()
    assert mon.steps == (0,)
    assert [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)] == inplace


def test_trace_record_is_built_from_these_numbers() -> None:
    """Guard against silent type changes of the record the tests above read."""
    tr = resviz.trace(_TVNet(), input_size="2x3x8x8")
    assert isinstance(tr, Trace) and tr.model == "_TVNet" and tr.input_shape == (2, 3, 8, 8)
