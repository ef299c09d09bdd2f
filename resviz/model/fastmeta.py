"""Shape-only execution on the ``meta`` device without torch's slow Python decompositions.

On ``meta`` tensors, PyTorch answers batch_norm, relu and addition through Python reference
implementations, and runs initialisers such as ``normal_``, each far slower than a convolution's
meta kernel (bench/RESULTS.md, CPU kernels). For a 1001-layer network that is seconds spent
computing nothing.

:class:`FastMeta` is a ``TorchFunctionMode`` that answers shape-preserving operations on meta
tensors directly (a new meta tensor of the input's shape, or the broadcast shape for binary ops)
and turns in-place initialisers of meta tensors into no-ops. Convolutions and pooling get their
output size from the formula in PyTorch's ``Conv2d``/``MaxPool2d`` documentation, because their
meta kernels import sympy on first use and adaptive pooling's imports the compiler stack: more
than the whole analysis (bench/RESULTS.md, imports). Anything unusual (string padding, ``return_indices``)
falls through to PyTorch. Real tensors pass through untouched.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

_SAME_SHAPE: set[Callable[..., Any]] = {
    F.batch_norm, F.instance_norm, F.layer_norm, F.group_norm,
    F.relu, F.relu6, F.gelu, F.silu, F.leaky_relu, F.hardswish, F.elu, F.dropout,
    torch.relu, torch.sigmoid, torch.tanh, Tensor.relu, Tensor.sigmoid, Tensor.tanh,
    torch.relu_, Tensor.relu_,
}
_BINARY: set[Callable[..., Any]] = {
    torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__, Tensor.add_, Tensor.__iadd__,
    torch.mul, Tensor.mul, Tensor.__mul__, Tensor.__rmul__, operator.add,
}
# In-place initialisers as ``torch.nn.init`` calls them (always under ``no_grad``).
_INIT: set[Callable[..., Any]] = {
    Tensor.uniform_, Tensor.normal_, Tensor.fill_, Tensor.zero_, Tensor.copy_,
    Tensor.bernoulli_, Tensor.exponential_, Tensor.clamp_, Tensor.mul_, Tensor.erfinv_,
    Tensor.sub_, Tensor.div_,
}


def _tuple(v: Any, n: int) -> tuple[int, ...] | None:
    if isinstance(v, int):
        return (v,) * n
    if isinstance(v, (tuple, list)) and len(v) == n and all(isinstance(i, int) for i in v):
        return tuple(v)
    return None  # e.g. padding="same": let PyTorch answer


def _window_out(size: int, k: int, s: int, p: int, d: int, ceil: bool = False) -> int:
    """Output length of a convolution or pooling window (PyTorch's Conv2d/MaxPool2d docs)."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1  # the last window must start inside the input or left padding
    return out


def _spatial(
    x: Tensor, k: Any, s: Any, p: Any, d: Any, ceil: bool, what: str,
) -> tuple[int, ...] | None:
    n = x.dim() - 2
    kk, ss, pp, dd = _tuple(k, n), _tuple(s if s not in (None, ()) else k, n), _tuple(p, n), _tuple(d, n)
    if kk is None or ss is None or pp is None or dd is None:
        return None
    out = tuple(
        _window_out(x.shape[2 + i], kk[i], ss[i], pp[i], dd[i], ceil) for i in range(n)
    )
    if any(o < 1 for o in out):
        raise RuntimeError(
            f"{what} output size is too small: input {tuple(x.shape[2:])}, kernel {kk}, "
            f"padding {pp} gives {out}"
        )
    return out


def _conv(x: Tensor, w: Tensor, b: Any = None, stride: Any = 1, padding: Any = 0,
          dilation: Any = 1, groups: int = 1) -> Tensor | None:
    if x.shape[1] != w.shape[1] * groups:
        raise RuntimeError(
            f"expected input{list(x.shape)} to have {w.shape[1] * groups} channels, "
            f"but got {x.shape[1]} channels instead"
        )
    out = _spatial(x, tuple(w.shape[2:]), stride, padding, dilation, False, "convolution")
    if out is None:
        return None
    return torch.empty((x.shape[0], w.shape[0], *out), dtype=x.dtype, device="meta")


def _max_pool(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
              dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    out = _spatial(x, kernel_size, stride, padding, dilation, ceil_mode, "max-pooling")
    if out is None or return_indices:
        return None
    return torch.empty((*x.shape[:2], *out), dtype=x.dtype, device="meta")


def _adaptive(x: Tensor, output_size: Any) -> Tensor | None:
    size = _tuple(output_size, x.dim() - 2)
    if size is None:
        return None
    return torch.empty((*x.shape[:2], *size), dtype=x.dtype, device="meta")


def _linear(x: Tensor, w: Tensor, b: Any = None) -> Tensor:
    if x.shape[-1] != w.shape[1]:
        raise RuntimeError(f"linear layer expects {w.shape[1]} input features, got {x.shape[-1]}")
    return torch.empty((*x.shape[:-1], w.shape[0]), dtype=x.dtype, device="meta")


_SHAPE_FNS: dict[Callable[..., Any], Callable[..., Any]] = {
    torch.conv1d: _conv, torch.conv2d: _conv, torch.conv3d: _conv,
    F.max_pool1d: _max_pool, F.max_pool2d: _max_pool, F.max_pool3d: _max_pool,
    F.adaptive_avg_pool1d: _adaptive, F.adaptive_avg_pool2d: _adaptive,
    F.adaptive_avg_pool3d: _adaptive, F.linear: _linear,
}


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy broadcasting (``torch.broadcast_shapes`` imports sympy on first use)."""
    if a == b:
        return tuple(a)
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb, strict=True):
        if x != y and 1 not in (x, y):
            raise RuntimeError(f"shapes {tuple(a)} and {tuple(b)} cannot be broadcast together")
        out.append(max(x, y) if 1 in (x, y) else x)
    return tuple(out)


def _is_meta(x: object) -> bool:
    return isinstance(x, Tensor) and x.device.type == "meta"


class FastMeta(TorchFunctionMode):
    """Answer shape-only questions on meta tensors in microseconds; see the module docstring."""

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: Any = None,
    ) -> Any:
        kwargs = kwargs or {}
        first = args[0] if args else kwargs.get("input")
        if _is_meta(first):
            if func in _SAME_SHAPE:
                return first if kwargs.get("inplace") or func in (torch.relu_, Tensor.relu_) else (
                    torch.empty(first.shape, dtype=first.dtype, device="meta")
                )
            if func in _BINARY and len(args) >= 2:
                other = args[1]
                shape = _broadcast(first.shape, other.shape) if isinstance(other, Tensor) else first.shape
                if func in (Tensor.add_, Tensor.__iadd__):
                    return first
                return torch.empty(shape, dtype=first.dtype, device="meta")
            if func in _INIT and not torch.is_grad_enabled():
                return first
            shape_fn = _SHAPE_FNS.get(func)
            if shape_fn is not None:
                out = shape_fn(*args, **kwargs)
                if out is not None:
                    return out
        return func(*args, **kwargs)


class WeightsOnMeta(TorchFunctionMode):
    """Build a model with its large tensors on the meta device and everything else real.

    Layers allocate their weights with ``torch.empty`` (then initialise them in place), so sending
    ``torch.empty`` to ``meta`` keeps every convolution and linear weight off the host, while other
    tensors a constructor makes stay real: the ``torch.linspace(...)`` whose ``.item()`` values
    timm's models read for their drop-path rates, BatchNorm's ones and zeros. This is for
    constructors that cannot run under ``torch.device("meta")``; the model it builds is only for
    counting (its meta weights have no values).
    """

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        if func in (torch.empty, torch.empty_strided):
            kwargs["device"] = "meta"
        return func(*args, **kwargs)
