"""Plain, picklable, JSON-serialisable records of what a model is and does.

Records never hold a tensor or a module: they can be cached by Streamlit, written to JSON and
compared across runs. Shapes are tuples of ints; counts are Python ints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]


def _plain(value: Any) -> Any:
    """Recursively turn dataclasses and tuples into dicts and lists for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


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
        return dict(_plain(self))


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
        return dict(_plain(self))


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
        return dict(_plain(self))


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
        d = dict(_plain(self))
        d["total_flops"] = self.total_flops
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        def tup(v: Any) -> Any:
            return tuple(v) if isinstance(v, list) else v

        def rec(kind: type[Any], row: dict[str, Any]) -> Any:
            names = {f.name for f in dataclasses.fields(kind)}
            return kind(**{k: tup(v) for k, v in row.items() if k in names})

        return cls(
            model=data["model"],
            input_shape=tuple(data["input_shape"]),
            total_params=data["total_params"],
            trainable_params=data["trainable_params"],
            total_macs=data["total_macs"],
            total_elementwise=data["total_elementwise"],
            activation_bytes=data["activation_bytes"],
            param_bytes=data["param_bytes"],
            layers=tuple(rec(LayerRecord, r) for r in data["layers"]),
            blocks=tuple(rec(BlockRecord, r) for r in data["blocks"]),
            stages=tuple(rec(StageRecord, r) for r in data["stages"]),
            notes=tuple(data.get("notes", ())),
            spec=data.get("spec"),
        )
