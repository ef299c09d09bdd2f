"""Checkpoints load strictly and safely; bad ones get one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resviz.errors import ResvizError
from resviz.model.resnet import build_model
from resviz.model.weights import load_checkpoint


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model("resnet20", device="cpu")
    path = tmp_path / "r20.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return model, path


def test_torch_and_safetensors_checkpoints_load_exactly(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model, path = saved
    fresh = load_checkpoint(build_model("resnet20", device="cpu"), path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))
    st = tmp_path / "r20.safetensors"
    save_file(model.state_dict(), str(st))
    again = load_checkpoint(build_model("resnet20", device="cpu"), st.read_bytes(), name="r20.safetensors")
    assert torch.equal(again.fc.weight, model.fc.weight)


def test_dataparallel_prefix_is_stripped(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, _ = saved
    path = tmp_path / "dp.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    load_checkpoint(build_model("resnet20", device="cpu"), path)


def test_mismatched_checkpoint_names_missing_keys(saved: tuple[torch.nn.Module, Path]) -> None:
    _, path = saved
    with pytest.raises(ResvizError, match=r"does not match resnet32: \d+ missing"):
        load_checkpoint(build_model("resnet32", device="cpu"), path)


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    sd = build_model("resnet20", device="cpu").state_dict()
    sd["fc.weight"] = torch.zeros(100, 64)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(ResvizError, match=r"shape mismatch \(fc.weight: checkpoint 100x64, model 10x64"):
        load_checkpoint(build_model("resnet20", device="cpu"), path)


def test_pickled_objects_are_refused_and_garbage_is_reported(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pth"
    torch.save({"payload": Path("x")}, evil)
    with pytest.raises(ResvizError, match="does not unpickle"):
        load_checkpoint(build_model("resnet20", device="cpu"), evil)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ResvizError, match="cannot load checkpoint"):
        load_checkpoint(build_model("resnet20", device="cpu"), junk)
    with pytest.raises(ResvizError, match="cannot read checkpoint"):
        load_checkpoint(build_model("resnet20", device="cpu"), tmp_path / "missing.pth")


def test_failed_load_leaves_the_model_unchanged(tmp_path: Path) -> None:
    model = build_model("resnet20", device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd = dict(model.state_dict())
    sd.pop("fc.bias")
    sd = {k: torch.ones_like(v) for k, v in sd.items()}
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(ResvizError):
        load_checkpoint(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
