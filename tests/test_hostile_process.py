"""In a real process, what a user sees for hostile input is one line on stderr and exit code 2.

CliRunner cannot show what Python itself prints (warnings, tracebacks from the interpreter), so
these run ``python -m resviz`` on this checkout.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def resviz(*args: str, cwd: Path) -> tuple[int, str, str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "resviz", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start


def one_error_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


#: Nested YAML aliases: under 400 bytes that a plain safe loader expands into 9**8 strings.
LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefg", "bcdefgh", strict=True)
) + "name: *h\n"


def _spec_files(tmp: Path) -> None:
    (tmp / "laughs.yaml").write_text(LAUGHS)
    (tmp / "u16.yaml").write_text("name: x\nblock: basic\nlayers: [1]\nwidths: [8]\n", encoding="utf-16")
    (tmp / "pickled.pth").write_bytes(pickle.dumps({"weight": [1.0, 2.0]}, protocol=4))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["summary", "resnet18", "--depth", "0"], "Invalid value for '--depth'"),
        (["trace", "resnet20", "--seed", "999999999999999999999999"], "seed = 999999999999999999999999"),
        (["summary", "laughs.yaml"], "YAML aliases"),
        (["summary", "u16.yaml"], "UTF-16"),
        (["diagram", "resnet20", "-o", "d" * 296 + ".svg"], "more than the 255"),
        (["summary", "resnet20", "-w", "pickled.pth"], "cannot load checkpoint"),
    ],
)
def test_one_line_on_stderr(tmp_path: Path, args: list[str], needle: str) -> None:
    _spec_files(tmp_path)
    before = set(os.listdir(tmp_path))
    code, _, err, seconds = resviz(*args, cwd=tmp_path)
    line = one_error_line(code, err)
    assert needle in line and len(line) < 400
    assert seconds < 60  # start-up included; the YAML refusal itself is timed in test_hostile_files
    assert set(os.listdir(tmp_path)) == before  # nothing written, no temporary file left


def test_help_is_unchanged(tmp_path: Path) -> None:
    code, out, err, _ = resviz("summary", "--help", cwd=tmp_path)
    assert code == 0 and "--depth" in out and not err
