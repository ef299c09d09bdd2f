"""The promise table (docs/promises.md) names only tests that exist, and its loose ends are held."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "promises.md"
REFERENCE = re.compile(r"(test_[a-z0-9_]+\.py)|::(test_[a-z0-9_]+)")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def _references() -> list[tuple[str, str]]:
    """(file, test) pairs of the table: ``::name`` belongs to the file named last before it."""
    found: list[tuple[str, str]] = []
    current = ""
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| "):
            continue
        for file, name in REFERENCE.findall(line):
            current = file or current
            if name:
                found.append((current, name))
    return found


def test_every_test_the_promise_table_names_exists() -> None:
    refs = _references()
    assert len(refs) > 40
    missing = [f"{f}::{n}" for f, n in refs if n not in _tests_in(ROOT / "tests" / f)]
    assert not missing, missing


def test_every_promise_names_a_test() -> None:
    rows = [line for line in TABLE.read_text(encoding="utf-8").splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 13
    for row in rows:
        assert "::test_" in row.rsplit("|", 2)[-2], row[:60]


def test_the_dashboard_binds_localhost_only() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    run = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "streamlit run" in line)
    assert "--server.address 127.0.0.1" in run
