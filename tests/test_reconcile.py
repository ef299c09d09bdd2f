"""Per-layer conv and linear MACs equal fvcore's; the reconciliation explains the rest."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from resviz.api import reconcile, summarize
from resviz.errors import ResvizError
from resviz.model.resnet import build_model, resolve_device
from resviz.studies.reconcile import _fvcore_by_module
from resviz.zoo import get_spec


@pytest.mark.parametrize(
    ("name", "shape"),
    [("resnet18", (1, 3, 64, 64)), ("resnet20", (2, 3, 32, 32)), ("preact_resnet164", (1, 3, 32, 32)),
     ("resnext50_32x4d", (1, 3, 64, 64)), ("wide_resnet50_2", (1, 3, 64, 64))],
)
def test_conv_and_linear_macs_equal_fvcore_layer_by_layer(name: str, shape: tuple[int, ...]) -> None:
    spec = get_spec(name)
    if sum(spec.layers) > 8:  # same block kinds, fewer repeats: keeps the jit trace fast
        spec = dataclasses.replace(spec, layers=(1,) * len(spec.layers))
    torch.manual_seed(0)
    model = build_model(spec, device="cpu").eval()
    s = summarize(spec, input_size=shape)
    fv = _fvcore_by_module(model, torch.zeros(shape))
    checked = 0
    for lr in s.layers:
        if lr.type in ("Conv2d", "Linear"):
            assert lr.macs == fv[lr.name], lr.name
            checked += 1
    assert checked >= 5


def test_reconcile_leaves_a_user_model_in_training_mode() -> None:
    model = build_model(dataclasses.replace(get_spec("resnet20"), layers=(1, 1, 1)), device="cpu").train()
    result = reconcile(model, input_size="1x3x32x32")
    assert model.training
    assert result.totals["flop_counter"] == 2 * result.totals["resviz_macs"]


def test_cuda_requested_without_cuda_is_a_user_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the error path exists only without a GPU
    with pytest.raises(ResvizError, match="CUDA was requested but no CUDA device is available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ResvizError, match="unknown device"):
        resolve_device("tpu9")
