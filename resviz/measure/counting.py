"""Per-module operation counts from shapes alone.

Headline MACs (multiply-accumulates) count convolutions, linear layers and matrix products written
as functions (attention's ``q @ k^T`` and ``attn @ v``, ``scaled_dot_product_attention``:
:func:`matmul_macs`; zero in a ResNet), the convention of
He et al. 2015 ("multiply-adds", Table 1: 3.8e9 for ResNet-50, whose 1x1 convolution carries the
stride; torchvision's v1.5 strides the 3x3 and has 4.1e9) and of torchvision's ``_ops`` metadata.
Biases are not counted (fvcore and torchvision do not count them either). Everything else is an "elementwise" operation:

* BatchNorm: one fused multiply-add per output element (inference form y = a*x + b);
* ReLU and other activations: one per output element;
* max-pooling: kernel-area comparisons per output element;
* average pooling: one addition per input element;
* residual addition: one per output element.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from resviz.model.blocks import ResidualAdd

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Hardswish)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


def _pair(v: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, tuple) else (v, v)


def kernel_and_stride(module: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Kernel and stride of convolutions and fixed-size pooling; empty tuples otherwise."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return tuple(module.kernel_size), tuple(module.stride)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _pair(module.kernel_size)  # type: ignore[arg-type]
        s = _pair(module.stride if module.stride is not None else module.kernel_size)  # type: ignore[arg-type]
        return k, s
    return (), ()


def count_macs(module: nn.Module, inp: Tensor, out: Tensor) -> int:
    """Multiply-accumulates of a convolution or linear layer for the whole batch; 0 otherwise."""
    if isinstance(module, nn.modules.conv._ConvNd):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return out.numel() * per_output
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


MATMUL_NAMES = frozenset({"matmul", "__matmul__", "__rmatmul__", "bmm", "mm", "baddbmm", "addbmm"})
ATTENTION_NAMES = frozenset({"scaled_dot_product_attention"})


def matmul_macs(name: str, args: tuple[object, ...], out: object) -> int:
    """Multiply-accumulates of a matrix product called as a function, from shapes: each output
    element of ``a @ b`` sums ``a.shape[-1]`` products; attention over queries ``(..., L, E)``,
    keys ``(..., S, E)`` and values ``(..., S, Ev)`` costs ``L*S*E`` for the scores and ``L*S*Ev``
    for the weighted sum per batch and head (the softmax is elementwise). 0 for anything else."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    if name in ATTENTION_NAMES and len(tensors) >= 3:
        q, k, v = tensors[:3]
        batch = math.prod(q.shape[:-2])
        return batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    if name in MATMUL_NAMES and len(tensors) >= 2 and isinstance(out, Tensor):
        a = tensors[-2]  # baddbmm(input, batch1, batch2): the last two are the factors
        return out.numel() * (a.shape[-1] if a.dim() else 1)
    return 0


def count_elementwise(module: nn.Module, inp: Tensor, out: Tensor) -> int:
    """Non-headline arithmetic, see the module docstring for each rule."""
    if isinstance(module, (*_NORMS, *_ACTIVATIONS, ResidualAdd)):
        return out.numel()
    if isinstance(module, nn.MaxPool2d):
        return out.numel() * math.prod(_pair(module.kernel_size))  # type: ignore[arg-type]
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d)):
        return inp.numel()
    return 0
