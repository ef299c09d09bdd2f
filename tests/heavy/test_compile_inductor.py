"""``resviz.monitor`` on a model compiled with inductor, the default ``torch.compile`` backend.

``tests/test_compile.py`` checks the mechanism with ``aot_eager``, which compiles in a second;
inductor generates and builds C++ (a cold compile takes tens of seconds on CPU), so this one check
that the recorded numbers still equal eager and that no graph is compiled after warm-up runs with
the heavy checks only. Inductor needs a C++ compiler.
"""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the aot_eager tests' helpers
from test_compile import STEPS, _assert_intact, _assert_same_series, _model, _train

from tests.compiling import Counting


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler")
def test_monitor_on_an_inductor_model_equals_eager() -> None:
    eager_model = _model()
    model = copy.deepcopy(eager_model)
    backend = Counting("inductor")
    compiled = torch.compile(model, backend=backend)
    want = _train(eager_model, eager_model, eager_model)
    got = _train(model, compiled, compiled)
    _assert_same_series(got, want)
    assert (backend.compiles, backend.runs) == (1, STEPS - 2)
    _assert_intact(compiled)
