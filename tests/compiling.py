"""A ``torch.compile`` backend that counts: shared by tests/test_compile.py and bench/compile_bench.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch._dynamo.backends.registry import lookup_backend


class Counting:
    """A backend wrapping ``inner`` (``aot_eager`` by default), counting compilations and
    compiled-graph runs."""

    def __init__(self, inner: str = "aot_eager") -> None:
        self.inner = lookup_backend(inner)
        self.compiles = 0
        self.runs = 0

    def __call__(self, gm: torch.fx.GraphModule, inputs: list[Tensor]) -> Callable[..., Any]:
        self.compiles += 1
        compiled = self.inner(gm, inputs)

        def run(*args: Any) -> Any:
            self.runs += 1
            return compiled(*args)

        return run
