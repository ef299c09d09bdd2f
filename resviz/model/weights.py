"""Safe checkpoint loading with strict, explained key checking.

Checkpoints are read with ``torch.load(weights_only=True)`` or safetensors, never by unpickling
arbitrary objects. Common wrappers are accepted: ``{"state_dict": ...}``, ``{"model": ...}`` and
the ``module.`` prefix of ``DataParallel``. A torchvision checkpoint loads into the matching
resviz preset unchanged, because resviz's modules carry torchvision's names.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from torch import Tensor, nn

from resviz.errors import ResvizError, clip, clip_path, one_line
from resviz.model.resnet import build_model


def read_state_dict(source: str | Path | bytes, name: str | None = None) -> dict[str, Tensor]:
    """Read a state dict from a path or raw bytes (``name`` tells the format of bytes)."""
    label = checkpoint_label(source, name)
    is_st = label.lower().endswith(".safetensors")
    try:
        if isinstance(source, bytes):
            raw = source
        else:
            raw = _read_file(Path(source), label)
    except OSError as exc:
        raise ResvizError(f"cannot read checkpoint {label}: {exc.strerror or exc}") from None
    try:
        obj = _parse(raw, is_st)
    except Exception as exc:
        msg = one_line(exc)
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            msg = "it contains pickled objects other than tensors, which resviz does not unpickle"
        elif "weights_only" in str(exc) or "invalid load key" in str(exc) or "zip" in msg.lower():
            msg = "not a PyTorch (.pt/.pth) or safetensors file, or the file is corrupt"
        else:
            msg = f"the file is corrupt or truncated ({msg[:120]})"
        raise ResvizError(f"cannot load checkpoint {label}: {msg[:200]}") from None
    return _unwrap(obj, label)


def _read_file(path: Path, label: str) -> bytes:
    """A checkpoint file's bytes. Only a regular file is read: a device such as /dev/zero or a pipe
    never ends, and reading it whole would fill the memory."""
    if path.exists() and not path.is_file():
        raise ResvizError(f"cannot read checkpoint {label}: it is not a regular file")
    return path.read_bytes()


def _parse(raw: bytes, is_st: bool) -> Any:
    """The object in a checkpoint's bytes. Warnings are silenced: for a file that is no checkpoint
    (a plain pickle) PyTorch warns about its pickle protocol before it refuses it, and the refusal
    is the one line a user should see."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # safetensors: an 8-byte header length, then a JSON header; torch.save: a zip archive.
        if is_st or (raw[8:9] == b"{" and not raw.startswith(b"PK")):
            return st_load(raw)
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)


def _unwrap(obj: Any, label: str) -> dict[str, Tensor]:
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ResvizError(f"checkpoint {label} is not a state dict of tensors")
    hollow = [clip(str(k)) for k, v in obj.items() if v.is_meta or v.layout != torch.strided]
    if hollow:
        raise ResvizError(f"checkpoint {label} holds tensors without dense values ({', '.join(hollow[:3])}"
                          f"{' and more' if len(hollow) > 3 else ''}: meta or sparse): save the trained model's own "
                          "state_dict()")
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def check_state_dict(model: nn.Module, state: Mapping[str, Tensor], label: str = "checkpoint") -> None:
    """Raise one line naming missing keys, unexpected keys and shape mismatches, if any."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [clip(k) for k in state if k not in own]
    mismatched = [
        f"{clip(k)}: checkpoint {'x'.join(map(str, state[k].shape))}, model {'x'.join(map(str, v.shape))}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            parts.append(f"{len(items)} {what} ({'; '.join(items[:3])}{more})")
    model_name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    raise ResvizError(f"{label} does not match {model_name}: " + ", ".join(parts))


def load_checkpoint(
    model: nn.Module, source: str | Path | bytes | Mapping[str, Tensor], name: str | None = None,
) -> nn.Module:
    """Load weights into ``model`` with strict key and shape checking; returns the model."""
    if isinstance(source, Mapping):
        state = _unwrap(source, name or "state dict")
    else:
        state = read_state_dict(source, name)
    check_state_dict(model, state, checkpoint_label(source, name))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # what keys and shapes do not tell: a dtype that cannot be copied, say
        raise ResvizError(f"{checkpoint_label(source, name)} does not load: {one_line(exc)[:200]}") from None
    return model


def check_checkpoint(spec: Any, source: str | Path | bytes, name: str | None = None) -> int:
    """Read a checkpoint and check its keys and shapes against ``spec``'s model, built on the
    meta device so that no weights are copied; returns the number of tensors."""
    return check_against(build_model(spec, device="meta"), source, name)


def check_against(model: nn.Module, source: str | Path | bytes, name: str | None = None) -> int:
    """Read a checkpoint and check its keys and shapes against ``model`` (which may hold meta
    weights: nothing is copied); returns the number of tensors."""
    state = read_state_dict(source, name)
    check_state_dict(model, state, checkpoint_label(source, name))
    return len(state)


def checkpoint_label(source: object, name: str | None) -> str:
    """How messages name a checkpoint: the given name, else its path."""
    return clip_path(name or (str(source) if isinstance(source, (str, Path)) else "checkpoint"))
