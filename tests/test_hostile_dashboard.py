"""Hostile dashboard links: every value is bounded, refused in one short line, and the page opens.

A link such as ``?model=custom&layers=1000000`` used to keep the server busy for minutes; now
the spec's bounds (:mod:`resviz.limits`) refuse it before any work, as on the command line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resviz.dashboard.state import defaults, parse_params

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_url_values_of_any_size_fall_back_and_are_quoted_short() -> None:
    params = {
        "model": "m" * 10_000, "seed": "9" * 5000, "batch": "1e3", "input": "99999999999999999999",
        "groups": "-1", "preact": "maybe" * 1000, "page": "<script>",
    }
    values, problems = parse_params(params)
    base = defaults("resnet50")
    assert all(values[k] == base[k] for k in ("seed", "batch", "input", "groups", "preact", "page"))
    assert len(problems) == len(params)
    assert all(len(p) < 200 and "\n" not in p for p in problems), problems


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"model": "custom", "layers": "1000000", "widths": "16"}, "1000000 blocks in total, more than the 700"),
        ({"model": "resnet20", "widths": "16,32," + "9" * 40}, "more than the 32768"),
        ({"model": "resnet20", "layers": "1," * 20_000}, "the number of stages = 20000"),
    ],
)
def test_a_huge_architecture_in_a_link_is_refused_at_once(params: dict[str, str], needle: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    start = time.perf_counter()
    at.run()
    assert time.perf_counter() - start < 30
    assert not at.exception, [e.value for e in at.exception]
    shown = [str(e.value) for e in at.error]
    assert len(shown) == 1 and needle in shown[0] and len(shown[0]) < 300, shown
