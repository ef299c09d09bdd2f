"""Static analysis on the ``meta`` device: shapes, parameters, MACs, activation memory.

The model runs once with meta tensors standing in for every parameter, buffer and input
(``torch.func.functional_call``), so nothing is computed or allocated and the cost does not grow
with batch size or resolution. A user's own module is analysed the same way and left untouched.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from resviz.errors import ResvizError, clip, one_line
from resviz.measure.counting import (
    ATTENTION_NAMES,
    MATMUL_NAMES,
    count_elementwise,
    count_macs,
    kernel_and_stride,
    matmul_macs,
)
from resviz.measure.graph import held_real, meta_state, needs_real
from resviz.measure.leaves import is_layer
from resviz.measure.outputs import logits
from resviz.measure.ownership import Use, exclusive
from resviz.measure.state import device_of
from resviz.measure.structure import Layout, discover
from resviz.model.blocks import Fork, ResidualBlock, find_blocks, shortcut_type
from resviz.model.fastmeta import FastMeta
from resviz.model.resnet import build_model
from resviz.records import (
    SMALL_INPUT_NOTE,
    BlockRecord,
    BlockType,
    Branch,
    LayerRecord,
    Shape,
    StageRecord,
    Summary,
    reuse_notes,
    shape_str,
)
from resviz.spec import BlockKind, ResNetSpec

_LAYER_RE = re.compile(r"^layer(\d+)$")


def stage_of(name: str) -> str:
    """He et al. 2015, Table 1 stage of a qualified name (``layer1.0.conv1`` -> ``conv2_x``)."""
    top = name.split(".", 1)[0]
    m = _LAYER_RE.match(top)
    if m:
        return f"conv{int(m.group(1)) + 1}_x"
    if top == "maxpool":
        return "conv2_x"  # the paper lists the 3x3 max-pool at the top of conv2_x
    if top in ("conv1", "bn1", "bias1", "relu"):  # bias1: Fixup's scalar bias in the stem
        return "conv1"
    return "head" if name else ""


def owning_block(name: str, blocks: Collection[str]) -> str:
    """The block (one of ``blocks``, outermost blocks as :func:`~resviz.model.blocks.find_blocks`
    lists them) whose qualified name is a proper prefix of ``name``; ``""`` outside every block.
    Pass a set: each layer then costs a few look-ups, not a scan of every block."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i])
        if prefix in blocks:
            return prefix
    return ""


def branch_of(rel: str) -> Branch:
    """Branch of a layer named ``rel`` inside its block: ``skip``, ``join`` (the add) or ``main``."""
    if rel.startswith(("downsample", "shortcut")):
        return Branch.SKIP
    return Branch.JOIN if rel == "add" else Branch.MAIN


class _Recorder:
    """Forward hooks that turn each executed leaf into a :class:`LayerRecord`."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {m: n for n, m in model.named_modules()}
        self.blocks = {n for n, _ in find_blocks(model)}
        self.layers: list[LayerRecord] = []
        self.calls: dict[nn.Module, int] = {}
        self.block_calls: dict[str, int] = {}
        self.block_io: dict[str, tuple[Shape, Shape]] = {}
        self.current = ""
        self.current_input: Shape = ()
        self.slots: dict[nn.Module, int] = {}
        self.stack: list[nn.Module] = []
        self.matmul_calls: dict[str, int] = {}

    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.current = self.names[module]
        self.slots[module] = len(self.layers)  # a fused module's row goes before its children's
        x = args[0] if args else None
        self.current_input = tuple(x.shape) if isinstance(x, Tensor) else ()
        conv = isinstance(module, nn.modules.conv._ConvNd)
        if conv and isinstance(x, Tensor) and x.dim() >= 2 and x.shape[1] != module.in_channels:
            raise ResvizError(
                f"{self.current} ({type(module).__name__}) expects {module.in_channels} input "
                f"channels but gets {x.shape[1]} (input {shape_str(tuple(x.shape))})"
            )

    def hook(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        name = self.names[module]
        if isinstance(module, Fork):
            return
        x = args[0] if args and isinstance(args[0], Tensor) else None
        y = out[0] if isinstance(out, (tuple, list)) else out
        if x is None or not isinstance(y, Tensor):
            return
        block = owning_block(name, self.blocks)
        branch = branch_of(name[len(block) + 1:]) if block else Branch.OUTSIDE
        kernel, stride = kernel_and_stride(module)
        call = self.calls[module] = self.calls.get(module, 0) + 1
        self.layers.insert(
            self.slots.pop(module, len(self.layers)),
            LayerRecord(
                name=name,
                type=type(module).__name__,
                input_shape=tuple(x.shape),
                output_shape=tuple(y.shape),
                params=sum(p.numel() for p in module.parameters(recurse=False)) if call == 1 else 0,
                macs=count_macs(module, x, y),
                elementwise=count_elementwise(module, x, y),
                activation_bytes=y.numel() * y.element_size(),
                stage=stage_of(name),
                block=block,
                branch=branch,
                kernel=kernel,
                stride=stride,
                groups=int(getattr(module, "groups", 1)),
                call=call,
            )
        )

    def block_hook(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        x = args[0]
        name = self.names[module]
        self.block_io[name] = (tuple(x.shape), tuple(out.shape))
        self.block_calls[name] = self.block_calls.get(name, 0) + 1

    def matmul(self, name: str, args: tuple[Any, ...], out: Any) -> None:
        """A matrix product called as a function (attention's): a row of its own, named after the
        module that runs it, unless a convolution or linear layer runs it (its MACs are counted)."""
        macs = matmul_macs(name, args, out)
        module = self.stack[-1] if self.stack else self.model
        if not macs or isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            return
        where = self.names[module]
        call = self.matmul_calls[where] = self.matmul_calls.get(where, 0) + 1
        x = next(a for a in args if isinstance(a, Tensor))
        block = owning_block(where, self.blocks)
        self.layers.append(LayerRecord(
            name=where, type=name.strip("_"), input_shape=tuple(x.shape), output_shape=tuple(out.shape), params=0,
            macs=macs, elementwise=0, activation_bytes=out.numel() * out.element_size(), stage=stage_of(where),
            block=block, branch=branch_of(where[len(block) + 1:]) if block else Branch.OUTSIDE, call=call,
        ))

    def _enter(self, module: nn.Module, _args: tuple[Any, ...]) -> None:
        self.stack.append(module)

    def _leave(self, module: nn.Module, _args: tuple[Any, ...], _out: Any) -> None:
        if self.stack and self.stack[-1] is module:  # not when its pre-hooks raised before _enter
            self.stack.pop()

    @contextmanager
    def attached(self) -> Iterator[None]:
        handles = []
        try:
            for name, m in self.model.named_modules():
                if name in self.blocks:
                    handles.append(m.register_forward_hook(self.block_hook))
                if is_layer(m):
                    handles.append(m.register_forward_pre_hook(self.pre_hook))
                    handles.append(m.register_forward_hook(self.hook))
                handles.append(m.register_forward_pre_hook(self._enter))
                handles.append(m.register_forward_hook(self._leave, always_call=True))
            with _Matmuls(self):
                yield
        finally:
            for h in handles:
                h.remove()


class _Matmuls(TorchFunctionMode):
    """Sees every matrix product the model calls as a function (:meth:`_Recorder.matmul`)."""

    def __init__(self, rec: _Recorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if name in MATMUL_NAMES or name in ATTENTION_NAMES:
            self.rec.matmul(name, args, out)
        return out


def _all_meta(model: nn.Module) -> bool:
    tensors = [*model.parameters(), *model.buffers()]
    return all(t.device.type == "meta" for t in tensors)


class _NeedsReal(Exception):
    """The forward cannot run on the meta device (it reads tensor values)."""


class MetaOnly(ResvizError):
    """A model whose weights are on the meta device and whose forward reads tensor values: it cannot
    be counted until it is built with real weights."""


def _has_meta(model: nn.Module) -> bool:
    return any(t.device.type == "meta" for t in (*model.parameters(), *model.buffers()))


def _run_meta(model: nn.Module, rec: _Recorder, input_shape: Shape, label: str) -> None:
    """The recorded pass on the meta device. The model's own hooks run too: they may be part of what
    it computes (a hook that reshapes an output)."""
    x = torch.empty(input_shape, device="meta")
    with rec.attached(), torch.no_grad(), FastMeta():
        try:
            if _all_meta(model):
                model(x)
            else:
                torch.func.functional_call(model, meta_state(model), (x,))
        except ResvizError:
            raise
        except (RuntimeError, ValueError, IndexError, NotImplementedError, TypeError) as exc:
            if needs_real(exc):
                if _has_meta(model):
                    raise MetaOnly(f"{label} reads tensor values in its forward, and its weights are on the meta "
                                   f"device: build it with real weights ({one_line(exc)[:120]})") from None
                raise _NeedsReal(one_line(exc)) from None
            _refuse(exc, rec, input_shape, label)


def _refuse(exc: Exception, rec: _Recorder, input_shape: Shape, label: str) -> None:
    """The one-line error of a forward that fails at ``input_shape``, naming the layer that failed."""
    first = one_line(exc)
    small = ("too small", "can't be greater", "non-positive", "output size", "size is 0")
    where = f"{rec.current} (input {shape_str(rec.current_input)})"
    if any(s in first.lower() for s in small):
        raise ResvizError(
            f"input {shape_str(input_shape)} is too small for {label}: the spatial size "
            f"reaches zero at {where}"
        ) from None
    raise ResvizError(f"{label} fails on input {shape_str(input_shape)} at {where}: {first}") from None


def _run_real(model: nn.Module, rec: _Recorder, input_shape: Shape, label: str) -> Shape:
    """The recorded pass of a model that cannot run on the meta device: one real forward of a batch
    of one, held (:func:`~resviz.measure.graph.held_real`). Returns the shape that ran."""
    shape = (1, *input_shape[1:])
    with held_real(model), rec.attached():
        try:
            model(torch.zeros(shape, device=device_of(model)))
        except (RuntimeError, ValueError, IndexError) as exc:
            _refuse(exc, rec, shape, label)
    return shape


def _receptive_fields(layers: Sequence[LayerRecord]) -> dict[str, tuple[int, int]]:
    """Receptive field and jump at the end of each stage, following the main path only."""
    r, j = 1, 1
    out: dict[str, tuple[int, int]] = {}
    for lr in layers:
        if lr.branch == "skip":
            continue
        if lr.kernel:
            r += (lr.kernel[0] - 1) * j
            j *= lr.stride[0]
        elif lr.type.startswith("Adaptive") and len(lr.input_shape) == 4:
            r += (lr.input_shape[2] - 1) * j  # global pooling sees the whole remaining map
        out[lr.stage] = (r, j)
    return out


def _block_kind(module: nn.Module) -> BlockType:
    kind = getattr(module, "kind", None)
    bottleneck = kind is BlockKind.BOTTLENECK if kind is not None else hasattr(module, "conv3")
    return BlockType.of(bottleneck=bottleneck, preact=bool(getattr(module, "preact", False)))


def _layout(model: nn.Module, input_shape: Shape, real: bool = False) -> Layout | None:
    """Where blocks are, found from the computation (:mod:`resviz.measure.structure`), for a model
    not built of resviz's own blocks (which say where they are); ``real`` lets discovery run the
    model for real when it cannot run on the meta device."""
    if any(isinstance(m, ResidualBlock) for m in model.modules()):
        return None
    try:
        return Layout(discover(model, input_shape, real=real).sites, stage_of)
    except (RuntimeError, NotImplementedError, ValueError, TypeError):  # the summary pass ran: blocks by name
        return None


def _place(rec: _Recorder, layout: Layout) -> None:
    """Each layer's block, branch and stage from the structure; each block's input and output."""
    places = layout.places([lr.name for lr in rec.layers])
    rec.layers = [replace(lr, block=b, branch=br, stage=st) for lr, (b, br, st) in zip(rec.layers, places, strict=True)]
    rec.block_io = {s.name: (s.input_shape, s.output_shape) for s in layout.sites}
    rec.block_calls = {}
    for s in layout.sites:
        rec.block_calls[s.module] = max(rec.block_calls.get(s.module, 0), s.call)


def _kind_of(rows: Sequence[LayerRecord], module: nn.Module) -> BlockType:
    """A block found in the computation: what its module declares (``kind``, as resviz's blocks
    do), else basic (two convolutions on the main branch) or bottleneck (three), pre-activation
    when that branch starts with a normalisation; anything else other."""
    if isinstance(getattr(module, "kind", None), BlockKind):
        return _block_kind(module)
    main = [lr for lr in rows if lr.branch == Branch.MAIN]
    convs = sum(lr.type.startswith("Conv") and not _on_pooled(lr) for lr in main)
    if convs not in (2, 3) or any(lr.type == "Linear" for lr in main):
        return BlockType.OTHER
    return BlockType.of(bottleneck=convs == 3, preact=bool(main) and "Norm" in main[0].type)


def _on_pooled(lr: LayerRecord) -> bool:
    """A convolution on a globally pooled 1x1 map (squeeze-excitation's): a gate, not a layer of
    the block's own path."""
    return len(lr.output_shape) == 4 and lr.output_shape[2:] == (1, 1) and lr.input_shape[2:] == (1, 1)


def _rollup(
    rec: _Recorder, model: nn.Module, layout: Layout | None = None,
) -> tuple[tuple[BlockRecord, ...], tuple[StageRecord, ...]]:
    """Group layer records into blocks and stages in one pass (linear in depth)."""
    modules = dict(model.named_modules())
    shortcuts = {s.name: s.shortcut for s in layout.sites} if layout is not None else {}
    by_block: dict[str, list[LayerRecord]] = {}
    by_stage: dict[str, list[LayerRecord]] = {}
    for lr in rec.layers:
        if lr.block:
            by_block.setdefault(lr.block, []).append(lr)
        by_stage.setdefault(lr.stage, []).append(lr)
    blocks = []
    for name, rows in by_block.items():  # insertion order = execution order
        if name not in rec.block_io:
            continue
        inp, outp = rec.block_io[name]
        blocks.append(
            BlockRecord(
                name=name,
                stage=rows[0].stage,
                kind=_block_kind(modules[name]) if layout is None else _kind_of(rows, modules[layout.modules[name]]),
                shortcut=shortcuts[name] if layout is not None else shortcut_type(modules[name]),
                input_shape=inp,
                output_shape=outp,
                params=sum(lr.params for lr in rows),
                macs=sum(lr.macs for lr in rows),
                elementwise=sum(lr.elementwise for lr in rows),
                module=layout.modules[name] if layout is not None else name,
            )
        )
    blocks_per_stage: dict[str, int] = {}
    for b in blocks:
        blocks_per_stage[b.stage] = blocks_per_stage.get(b.stage, 0) + 1
    rf = _receptive_fields(rec.layers)
    stages: list[StageRecord] = []
    for stage, rows in by_stage.items():
        main_rows = [x for x in rows if x.branch != "skip"] or rows
        r, j = rf.get(stage, (1, 1))
        stages.append(
            StageRecord(
                name=stage,
                output_shape=main_rows[-1].output_shape,
                num_blocks=blocks_per_stage.get(stage, 0),
                params=sum(x.params for x in rows),
                macs=sum(x.macs for x in rows),
                elementwise=sum(x.elementwise for x in rows),
                receptive_field=r,
                jump=j,
            )
        )
    return tuple(blocks), tuple(stages)


def _small_input_notes(layers: Sequence[LayerRecord]) -> list[str]:
    for lr in layers:
        if lr.stride and max(lr.stride) > 1 and len(lr.input_shape) == 4 and lr.input_shape[2] == 1:
            return [
                f"{SMALL_INPUT_NOTE}: {lr.name} downsamples a 1x1 "
                "map, so deeper stages see padding only"
            ]
    return []


def _reuse_notes(rec: _Recorder) -> tuple[str, ...]:
    """A note per block, and per layer outside such blocks, that runs more than once per forward."""
    shared = {n: c for n, c in rec.block_calls.items() if c > 1}
    blocks = tuple(
        f"{name} runs {n} times in one forward (shared weights): one row per call for its layers, its "
        f"parameters counted once"
        for name, n in shared.items()
    )
    return blocks + reuse_notes(lr for lr in rec.layers if lr.block not in shared)


def analyze_module(
    model: nn.Module,
    input_shape: Shape,
    label: str | None = None,
    spec: ResNetSpec | None = None,
    notes: Sequence[str] = (),
    find_structure: bool = True,
) -> Summary:
    """Static analysis of any ``nn.Module`` at ``input_shape``; the module is not modified.
    ``find_structure=False`` skips finding the residual structure of a model resviz did not build (its
    layers' block, branch and stage are then read from their names): for a memory estimate."""
    label = label or (spec.name if spec else type(model).__name__)
    if spec is not None and input_shape[1] != spec.in_channels:
        raise ResvizError(
            f"{label} expects {spec.in_channels} input channels, got {input_shape[1]} "
            f"(input {shape_str(input_shape)})"
        )
    rec = _Recorder(model)
    real: tuple[str, ...] = ()
    with exclusive(model, Use.SUMMARY, label):  # its parameters are swapped for meta ones meanwhile
        try:
            _run_meta(model, rec, input_shape, label)  # first: its errors name the layer that fails
        except _NeedsReal as why:
            rec = _Recorder(model)
            input_shape = _run_real(model, rec, input_shape, label)
            real = (f"{label} cannot run on the meta device ({clip(str(why), 100)}): counted on one real "
                    f"sample of {shape_str(input_shape)}",)
        layout = _layout(model, input_shape, real=bool(real)) if find_structure else None
    if layout is not None:
        _place(rec, layout)
    blocks, stages = _rollup(rec, model, layout)
    seen: set[int] = set()
    total = trainable = param_bytes = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
        param_bytes += p.numel() * p.element_size()
    layers = tuple(rec.layers)
    return Summary(
        model=label,
        input_shape=tuple(input_shape),
        total_params=total,
        trainable_params=trainable,
        total_macs=sum(lr.macs for lr in layers),
        total_elementwise=sum(lr.elementwise for lr in layers),
        activation_bytes=sum(lr.activation_bytes for lr in layers),
        param_bytes=param_bytes,
        layers=layers,
        blocks=blocks,
        stages=stages,
        notes=tuple(notes) + real + tuple(_small_input_notes(layers)) + _reuse_notes(rec),
        spec=spec.to_dict() if spec else None,
    )


def analyze_spec(spec: ResNetSpec, input_shape: Shape) -> Summary:
    """The static analysis of the network ``spec`` describes, built on the meta device (free)."""
    return analyze_module(build_model(spec, device="meta"), input_shape, spec=spec)


#: The row types of matrix products called as functions (attention's): weightless, not layers of depth.
PRODUCT_TYPES = frozenset(n.strip("_") for n in MATMUL_NAMES | ATTENTION_NAMES)


def weighted_depth(summary: Summary) -> int:
    """Depth as He et al. 2015 count it (arXiv:1512.03385, Table 1: ResNet-50 is 49 convolutions and
    the classifier): the convolutions and linear layers that run on the way from input to output,
    each call once, projection shortcuts and weightless matrix products (attention) left out. For
    resviz's own models it equals the spec's depth (a test checks every preset)."""
    return sum(1 for lr in summary.layers
               if lr.macs > 0 and lr.branch is not Branch.SKIP and lr.type not in PRODUCT_TYPES)


def logits_width(model: nn.Module, input_shape: Shape, label: str) -> int:
    """How many classes ``model`` scores for a batch of ``input_shape``: the last dimension of the
    logits of one forward on the meta device (free; the module is not modified). A one-line
    error when there are no logits, or when they are not ``(batch, classes)``."""
    x = torch.empty(input_shape, device="meta")
    with exclusive(model, Use.SUMMARY, label):
        try:
            with torch.no_grad(), FastMeta():
                out = model(x) if _all_meta(model) else torch.func.functional_call(model, meta_state(model), (x,))
        except (RuntimeError, NotImplementedError, TypeError) as exc:
            if not needs_real(exc) or _has_meta(model):
                raise
            with held_real(model):
                out = model(torch.zeros((1, *input_shape[1:]), device=device_of(model)))
    found = logits(out, label)
    if found.dim() != 2:
        raise ResvizError(f"{label} returns logits of shape {shape_str(tuple(found.shape))}, not (batch, classes): "
                          "a comparison trains classifiers")
    return int(found.shape[-1])
