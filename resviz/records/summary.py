"""Static records: what a model is (layers, blocks, stages, totals) at one input size.

Records never hold a tensor or a module: they can be cached by Streamlit, written to JSON and
compared across runs. Shapes are tuples of ints; counts are Python ints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from resviz.records.codec import Called, Shape, build, json_safe, stamped
from resviz.records.display import NotebookRepr
from resviz.records.enums import BlockType, Branch, ShortcutKind

SUMMARY_KIND = "resviz.summary"

ROOT_BLOCK = "<root>"
"""The block name of a residual addition the model's own ``forward`` performs (no submodule owns it)."""

_SUFFIX = re.compile(r"(:\d+)?(#\d+)?$")

SMALL_INPUT_NOTE = "input is smaller than the network's total stride"
"""How a summary's note begins when the input is smaller than the total stride."""


@dataclass(frozen=True)
class LayerRecord(Called):
    """One executed leaf module.

    ``macs`` counts multiply-accumulates of convolutions and linear layers only (He et al. 2015's
    "multiply-adds", torchvision's ``_ops``); ``elementwise`` counts the other arithmetic
    (BatchNorm affine, ReLU, pooling, residual additions) so it never mixes into the headline.
    ``branch`` is ``main`` or ``skip`` inside a residual block, ``join`` for the addition, and
    empty outside blocks. ``kernel``/``stride`` are given for convolutions and pooling. A module
    that runs several times in one forward (shared weights) has one row per call, numbered by
    ``call``; its ``params`` are on the first call's row only, so sums count them once.
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
    branch: Branch = Branch.OUTSIDE
    kernel: Shape = ()
    stride: Shape = ()
    groups: int = 1
    call: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "branch", Branch(self.branch))

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(self))


@dataclass(frozen=True)
class BlockRecord:
    """One residual block: its shapes, cost and which shortcut it uses."""

    name: str
    stage: str
    kind: BlockType
    shortcut: ShortcutKind
    input_shape: Shape
    output_shape: Shape
    params: int
    macs: int
    elementwise: int
    module: str | None = None
    """The qualified name of the module that performs the addition ("" for the model itself);
    ``None`` in records written before it was kept (see :attr:`owner`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", BlockType(self.kind))
        object.__setattr__(self, "shortcut", ShortcutKind(self.shortcut))

    @property
    def owner(self) -> str:
        """The qualified name of the module whose ``forward`` performs this block's addition, which
        prefixes its layers' names: ``blocks.0`` for ``blocks.0:2`` (the second residual of a module
        holding two, as a ViT block does) and for ``blocks.0#2`` (its second call); empty for
        :data:`ROOT_BLOCK`, the model itself. Read from :attr:`module`; a record written before that
        field existed has it guessed from the name."""
        if self.module is not None:
            return self.module
        base = _SUFFIX.sub("", self.name)
        return "" if base == ROOT_BLOCK else base

    def relative(self, layer: str) -> str:
        """``layer``'s name inside the block's module (``attn.qkv`` for ``blocks.0.attn.qkv``)."""
        prefix = f"{self.owner}." if self.owner else ""
        return layer[len(prefix):] if prefix and layer.startswith(prefix) else layer

    def absolute(self, rel: str) -> str:
        """The qualified name of the layer ``rel`` inside the block's module (the inverse of :meth:`relative`)."""
        return f"{self.owner}.{rel}" if self.owner else rel

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
class Summary(NotebookRepr):
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
        d = stamped(SUMMARY_KIND, json_safe(self))
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
