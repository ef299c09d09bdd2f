"""A light core and optional extras (pyproject.toml, ``resviz/extras.py``).

``import resviz`` and the core features load no optional package; every optional import goes
through ``resviz.extras`` and names an extra that pyproject.toml declares and that installs it; with
every optional package missing, the core still works and each extra's feature refuses in one line
(``tests/core_only.py``; the same checks run against the built wheel in ``tests/heavy/``).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from core_only import OPTIONAL

from resviz.errors import ResvizError
from resviz.extras import DISTRIBUTIONS, EXTRA_PACKAGES, message, missing, require

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
SOURCES = [*sorted((ROOT / "resviz").rglob("*.py")), ROOT / "app.py"]

#: The extras a feature of resviz names, and those that only gather others or serve development.
FEATURE_EXTRAS = ("dashboard", "reports", "reconcile", "data", "tensorboard", "lightning")


def _name(requirement: str) -> str:
    """``"mkdocstrings[python]>=0.26"`` -> ``"mkdocstrings"``."""
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return match.group(0).lower()


def _distribution(module: str) -> str:
    top = module.split(".")[0]
    return DISTRIBUTIONS.get(top, top)


def _loaded(code: str) -> list[str]:
    """The optional packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r})))"
    res = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return list(ast.literal_eval(res.stdout.strip().splitlines()[-1]))


def test_import_resviz_and_monitor_load_no_optional_package() -> None:
    assert _loaded("import resviz") == []
    assert _loaded("from resviz import monitor") == []


def test_the_core_features_load_no_optional_package() -> None:
    code = (
        "import resviz, resviz.cli\n"
        "from resviz import summarize, trace, monitor, diagram, compare, write_report, render_markdown\n"
        "summarize('resnet18'); diagram('resnet18')"
    )
    assert _loaded(code) == []


@pytest.mark.slow
def test_the_core_works_and_extras_refuse_in_one_line_with_every_optional_package_missing(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "core_only.py"), "--block", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "all core-only checks passed" in res.stdout


def test_the_core_dependencies_hold_no_optional_package() -> None:
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert core == {"torch", "numpy", "graphviz", "typer", "rich", "pyyaml", "safetensors"}
    assert not core & {_distribution(m) for m in OPTIONAL}


def test_every_optional_package_has_an_extra_and_all_gathers_them() -> None:
    for extra in FEATURE_EXTRAS:
        assert EXTRAS[extra], extra
    gathered = re.fullmatch(r"resviz\[(.*)\]", EXTRAS["all"][0])
    assert gathered and len(EXTRAS["all"]) == 1
    assert sorted(gathered.group(1).split(",")) == sorted(FEATURE_EXTRAS)
    in_features = {_name(r) for extra in FEATURE_EXTRAS for r in EXTRAS[extra]}
    assert {_distribution(m) for m in OPTIONAL} <= in_features


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


def test_every_require_names_a_declared_extra_that_installs_the_package() -> None:
    seen = 0
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for call in _calls(tree, "require") + _calls(tree, "message"):
            if not all(isinstance(a, ast.Constant) for a in call.args[:2]):
                continue  # resviz/extras.py itself
            module, extra = (ast.literal_eval(a) for a in call.args[:2])
            assert extra in EXTRAS, (path, extra)
            assert _distribution(module) in {_name(r) for r in EXTRAS[extra]}, (path, module, extra)
            assert module.split(".")[0] in OPTIONAL, f"{path}: require() is for optional packages only, not {module}"
            seen += 1
    assert seen >= 5


def _guarded(tree: ast.Module) -> dict[str, str]:
    """Top-level ``try: import X / except ImportError: raise missing(exc, EXTRA, ...)`` -> {X: EXTRA}."""
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.Try):
            continue
        calls = [c for h in node.handlers for c in _calls(h, "missing")]
        if not calls:
            continue
        extra = ast.literal_eval(calls[0].args[1])
        assert extra in EXTRAS, extra
        for stmt in node.body:
            assert isinstance(stmt, (ast.Import, ast.ImportFrom)), ast.dump(stmt)
            for mod in ([a.name for a in stmt.names] if isinstance(stmt, ast.Import) else [stmt.module or ""]):
                assert _distribution(mod) in {_name(r) for r in EXTRAS[extra]}, (mod, extra)
                found[mod.split(".")[0]] = extra
    return found


def test_every_optional_import_says_which_extra_to_install() -> None:
    """An optional package is imported behind ``missing`` at a module's top, or, inside a function,
    only in a module that already needs the same extra (the dashboard's pages import pandas)."""
    bare = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        guarded = _guarded(tree)
        extras_here = set(guarded.values())
        guarded_nodes = {id(n) for t in tree.body if isinstance(t, ast.Try) for n in ast.walk(t)}
        for node in ast.walk(tree):
            if id(node) in guarded_nodes or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for mod in mods:
                top = mod.split(".")[0]
                if top in OPTIONAL and not any(
                    _distribution(top) in {_name(r) for r in EXTRAS[e]} for e in extras_here
                ):
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {mod}")
    assert not bare, "\n".join(bare)


def test_require_names_the_extra_in_one_line() -> None:
    with pytest.raises(ResvizError) as info:
        require("resviz_no_such_package.sub", "reports", "a feature")
    assert str(info.value) == "a feature needs resviz_no_such_package: pip install 'resviz[reports]'"
    assert message("sklearn.datasets", "data", "--data digits") == (
        "--data digits needs scikit-learn: pip install 'resviz[data]'"
    )
    assert require("json", "reports", "x").__name__ == "json"


def test_a_package_broken_inside_is_not_reported_as_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package whose own import fails keeps its error and traceback: not the user's mistake."""
    (tmp_path / "resviz_half_installed.py").write_text("import resviz_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="resviz_no_such_dependency"):
        require("resviz_half_installed", "reports", "a feature")
    broken = ImportError("cannot import name 'x' from 'plotly'")
    assert missing(broken, "reports", "a feature") is broken
    gone = ModuleNotFoundError("No module named 'plotly'", name="plotly")
    assert str(missing(gone, "reports", "a feature")) == "a feature needs plotly: pip install 'resviz[reports]'"
    inside = ModuleNotFoundError("No module named 'narwhals'", name="narwhals")  # plotly's own dependency
    assert missing(inside, "reports", "a feature") is inside


def test_each_extras_packages_are_the_ones_pyproject_installs() -> None:
    for extra in FEATURE_EXTRAS:
        assert {_distribution(m) for m in EXTRA_PACKAGES[extra]} == {_name(r) for r in EXTRAS[extra]}, extra


def test_the_version_is_written_once() -> None:
    import resviz

    assert "version" in PYPROJECT["project"]["dynamic"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "resviz.__version__"}
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {resviz.__version__}" in changelog
    assert (ROOT / "resviz" / "py.typed").is_file()
