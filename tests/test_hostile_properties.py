"""Property: whatever a user types, resviz either works or refuses in one line, and leaves no file.

Hypothesis draws spec fields, ``--set`` overrides, input sizes, command lines and output names
from mixtures of ordinary values, values at and past every bound in :mod:`resviz.limits`, huge and
negative integers, floats, booleans, lists and odd text. Each example must end in exit code 0,
or exit code 2 with exactly one line on stderr that starts with ``error:``; never a traceback,
and never a file (temporary or partial) left in the output folder after a refusal. The profile in
``conftest.py`` makes the examples the same on every run.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from resviz import limits
from resviz.api import parse_input_size, parse_overrides, resolve_spec
from resviz.cli import app
from resviz.errors import ResvizError
from resviz.files import write_atomic
from resviz.spec import ResNetSpec

runner = CliRunner()

#: Integers around every bound and far past them; the small ones keep accepted examples cheap.
EDGE_INTS = [
    0, 1, 2, 3, -1, -(2**63), 2**31, 2**63 - 1, 2**63, 2**64, 10**30, 10**400,
    limits.MAX_BLOCKS + 1, limits.MAX_STAGES + 1, limits.MAX_CHANNELS, limits.MAX_CHANNELS + 1,
    limits.MAX_CLASSES + 1, limits.MAX_SIDE + 1,
]
ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(min_value=-3, max_value=4), st.integers())
small_ints = st.one_of(st.sampled_from([0, 1, 2, -1, 10**30, limits.MAX_BLOCKS + 1]), st.integers(-2, 3))
odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
values = st.one_of(
    ints, st.booleans(), st.floats(allow_nan=True, allow_infinity=True), odd_text, st.none(),
    st.lists(ints, max_size=5), st.sampled_from(["basic", "bottleneck", "A", "B", "C", "none", "cifar", "1x1"]),
)
FIELDS = [
    "name", "block", "layers", "widths", "stem", "stem_width", "groups", "width_per_group", "shortcut",
    "preact", "stride_at", "num_classes", "in_channels",
]


def one_line_refusal(exc: ResvizError) -> None:
    message = str(exc)
    assert message and len(message.splitlines()) == 1 and len(message) < 600, message


# ----------------------------------------------------------------------------------- the Python surface
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=8),
       st.lists(small_ints, min_size=1, max_size=4))
def test_any_spec_fields(fields: dict[str, Any], layers: list[int]) -> None:
    data: dict[str, Any] = {"name": "p", "block": "basic", "layers": layers, "widths": [8] * len(layers), **fields}
    try:
        spec = ResNetSpec.from_dict(data)
    except ResvizError as exc:
        one_line_refusal(exc)
        return
    assert sum(spec.layers) <= limits.MAX_BLOCKS and spec.num_stages <= limits.MAX_STAGES
    assert max(spec.stage_out_channels()) <= limits.MAX_CHANNELS


override_values = st.one_of(ints.map(str), odd_text, st.lists(ints, min_size=1, max_size=5).map(
    lambda xs: ",".join(map(str, xs))))


@given(st.lists(st.tuples(st.sampled_from([*FIELDS, "colour", "layers "]), override_values), max_size=4),
       st.sampled_from(["custom", "resnet20", "resnet50"]))
def test_any_set_overrides(items: list[tuple[str, str]], target: str) -> None:
    try:
        resolve_spec(target, overrides=parse_overrides([f"{k}={v}" for k, v in items]))
    except ResvizError as exc:
        one_line_refusal(exc)


size_texts = st.one_of(
    st.lists(st.one_of(ints, st.integers(1, 64)), max_size=6).map(lambda xs: "x".join(map(str, xs))),
    odd_text,
)
sizes = st.one_of(
    size_texts,
    st.lists(ints, max_size=6).map(tuple),
    odd_text,
    st.lists(st.one_of(ints, st.floats(), odd_text), max_size=5),
)


@given(sizes)
def test_any_input_size(size: Any) -> None:
    try:
        n, c, h, w = parse_input_size(size)
    except ResvizError as exc:
        one_line_refusal(exc)
        return
    assert min(n, c, h, w) >= 1 and math.prod((n, c, h, w)) <= limits.MAX_INPUT_ELEMENTS


# ----------------------------------------------------------------------------------- output names
@contextmanager
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="resviz-hostile-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=300),
    st.integers(200, 300).map(lambda n: "n" * n),
    st.integers(60, 140).map(lambda n: "é" * n),
)


@given(names, st.sampled_from(["", "missing/", "missing/deeper/"]))
def test_any_output_name(name: str, sub: str) -> None:
    with folder() as out:
        target = out / (sub + name)
        try:
            write_atomic(target, "data")
        except ResvizError as exc:
            one_line_refusal(exc)
            assert os.listdir(out) == []
            return
        assert target.read_text() == "data"
        assert sorted(os.listdir(target.parent)) == [target.name]  # no temporary file left


# ----------------------------------------------------------------------------------- the command line
def check_cli(args: list[str], out: Path, target: Path | None = None) -> None:
    res = runner.invoke(app, args)
    event(f"exit code {res.exit_code}")
    assert "Traceback" not in res.output, res.output
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(res.exception)
    if res.exit_code == 0:
        left = sorted(os.listdir(out))
        assert left == ([] if target is None else [target.name]), left
        return
    assert res.exit_code == 2, (args, res.exit_code, res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, res.stderr)
    assert os.listdir(out) == [], os.listdir(out)


GOOD_SETS = {
    "stem_width": st.integers(1, 16).map(str),
    "num_classes": st.sampled_from(["2", "10", str(limits.MAX_CLASSES)]),
    "in_channels": st.just("3"),
    "preact": st.sampled_from(["true", "no"]),
    "shortcut": st.sampled_from(["A", "B", "C", "none"]),
}


def cli_args(draw: Any, good: bool) -> list[str]:
    """A spec given by a preset or ``custom`` with ``--set`` overrides and ``--input``: all drawn
    from accepted values when ``good``, else from anything."""
    if good:
        args = [draw(st.sampled_from(["custom", "resnet20", "plain20"]))]
        layers = draw(st.lists(st.integers(1, 2), min_size=1, max_size=3))
        widths = draw(st.lists(st.integers(1, 16), min_size=len(layers), max_size=len(layers)))
    else:
        args = [draw(st.sampled_from(["custom", "resnet20", "nope", "x.yaml"]))]
        layers = draw(st.lists(small_ints, min_size=1, max_size=20))
        widths = draw(st.lists(ints, min_size=1, max_size=20))
    args += ["--set", "layers=" + ",".join(map(str, layers)), "--set", "stem=cifar"]
    if good or draw(st.booleans()):  # a preset's own widths need its number of stages
        args += ["--set", "widths=" + ",".join(map(str, widths))]
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from([*GOOD_SETS, "groups", "width_per_group", "colour"]))
        if good and key in GOOD_SETS:
            args += ["--set", f"{key}={draw(GOOD_SETS[key])}"]
        elif not good:
            args += ["--set", f"{key}={draw(override_values)}"]
    if draw(st.booleans()):
        args += ["--input", draw(st.sampled_from(["1x3x32x32", "3x16x16", "2x3x8x8"]) if good else size_texts)]
    return args


@settings(max_examples=25)
@given(st.data())
def test_any_summary_or_flops_command(data: st.DataObject) -> None:
    command = data.draw(st.sampled_from(["summary", "flops"]))
    good = data.draw(st.booleans())
    args = [command, *cli_args(data.draw, good), "-f", "json"]
    if command == "summary" and data.draw(st.booleans()):
        args += ["--depth", str(data.draw(st.integers(1, 4) if good else ints))]
    with folder() as out:
        check_cli(args, out)


@settings(max_examples=25)
@given(st.data())
def test_any_diagram_command(data: st.DataObject) -> None:
    with folder() as out:
        good = data.draw(st.booleans())
        sub = "" if good else data.draw(st.sampled_from(["", "missing/"]))
        name = data.draw(st.text("abcXYZ019 ._-é", min_size=1, max_size=100) if good else names)
        target = out / f"{sub}{name}.dot"
        check_cli(["diagram", *cli_args(data.draw, good), "-o", str(target)], out, target)
