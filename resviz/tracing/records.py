"""Plain, picklable, JSON-serialisable records of what a model is and does.

Records never hold a tensor or a module: they can be cached by Streamlit, written to JSON and
compared across runs. Shapes are tuples of ints; counts are Python ints.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]


_NONFINITE = ("nan", "inf", "-inf")


def json_safe(value: Any) -> Any:
    """Dataclasses, tuples and floats -> dicts, lists and JSON-safe values, recursively.

    JSON has no NaN or infinity: they become the strings ``"nan"``, ``"inf"`` and ``"-inf"``,
    which :func:`build` reads back into the float fields of a record.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _decode(value: Any, floats: bool) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v, floats) for v in value)
    if floats and isinstance(value, str) and value in _NONFINITE:
        return float(value)
    return value


def build(kind: type[Any], row: dict[str, Any]) -> Any:
    """A record of type ``kind`` from its :func:`json_safe` dict: lists become tuples, and
    ``"nan"``/``"inf"`` become floats again in fields typed as floats only (a layer may be named
    ``nan``). Keys a newer or older version may add are ignored."""
    types = {f.name: str(f.type) for f in dataclasses.fields(kind)}
    return kind(**{k: _decode(v, "float" in types[k]) for k, v in row.items() if k in types})


def decode_float(value: Any) -> Any:
    """A float (or ``None``) written by :func:`json_safe`."""
    return _decode(value, True)


def shape_str(shape: Shape) -> str:
    """``(1, 64, 112, 112)`` -> ``1x64x112x112``."""
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class LayerRecord:
    """One executed leaf module.

    ``macs`` counts multiply-accumulates of convolutions and linear layers only (He et al. 2015's
    "multiply-adds", torchvision's ``_ops``); ``elementwise`` counts the other arithmetic
    (BatchNorm affine, ReLU, pooling, residual additions) so it never mixes into the headline.
    ``branch`` is ``main`` or ``skip`` inside a residual block, ``join`` for the addition, and
    empty outside blocks. ``kernel``/``stride`` are given for convolutions and pooling.
    """

    name: str
    type: str
    input_shape: Shape
    output_shape: Shape
    params: int
    macs: int
    elementwise: int
    activation_bytes: int
    stage: str = ""
    block: str = ""
    branch: str = ""
    kernel: Shape = ()
    stride: Shape = ()
    groups: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(self))


@dataclass(frozen=True)
class BlockRecord:
    """One residual block: its shapes, cost and which shortcut it uses."""

    name: str
    stage: str
    kind: str
    shortcut: str
    input_shape: Shape
    output_shape: Shape
    params: int
    macs: int
    elementwise: int

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(self))


@dataclass(frozen=True)
class StageRecord:
    """A stage as in He et al. 2015, Table 1 (conv1, conv2_x ... conv5_x), plus ``head``.

    ``receptive_field`` and ``jump`` (the cumulative stride) are those of the stage's output
    along the main path, computed with the usual recursion r += (k - 1) * j, j *= s.
    """

    name: str
    output_shape: Shape
    num_blocks: int
    params: int
    macs: int
    elementwise: int
    receptive_field: int
    jump: int

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(self))


@dataclass(frozen=True)
class Summary:
    """The static analysis of one model at one input size."""

    model: str
    input_shape: Shape
    total_params: int
    trainable_params: int
    total_macs: int
    total_elementwise: int
    activation_bytes: int
    param_bytes: int
    layers: tuple[LayerRecord, ...]
    blocks: tuple[BlockRecord, ...]
    stages: tuple[StageRecord, ...]
    notes: tuple[str, ...] = ()
    spec: dict[str, Any] | None = field(default=None)

    @property
    def total_flops(self) -> int:
        """FLOPs as most papers after 2017 report them: 2 x MACs."""
        return 2 * self.total_macs

    def to_dict(self) -> dict[str, Any]:
        d = dict(json_safe(self))
        d["total_flops"] = self.total_flops
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        return cls(
            model=data["model"],
            input_shape=tuple(data["input_shape"]),
            total_params=data["total_params"],
            trainable_params=data["trainable_params"],
            total_macs=data["total_macs"],
            total_elementwise=data["total_elementwise"],
            activation_bytes=data["activation_bytes"],
            param_bytes=data["param_bytes"],
            layers=tuple(build(LayerRecord, r) for r in data["layers"]),
            blocks=tuple(build(BlockRecord, r) for r in data["blocks"]),
            stages=tuple(build(StageRecord, r) for r in data["stages"]),
            notes=tuple(data.get("notes", ())),
            spec=data.get("spec"),
        )
