"""The package's layers point one way (README, "Development"), and stay that way.

import-linter checks the contracts in pyproject.toml; this file also checks the rule it cannot
see: no import hides inside a function below the surfaces, except the few listed here with the
reason (start-up time of a heavy optional library).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "resviz"

#: Surfaces import heavy modules inside commands and pages so ``resviz --help`` and the
#: dashboard's server start without loading PyTorch, and a monitored training loop without loading
#: a logging tool it does not write to.
LAZY_SURFACES = ("cli", "dashboard", "integrations", "output.py", "public.py")

#: Imports allowed inside functions below the surfaces, with the reason.
#: Optional packages (the extras) are not listed: they are imported through ``resviz.extras.require``
#: inside the function that needs them, or at the top of a module behind ``resviz.extras.missing``
#: (``tests/test_extras.py``).
ALLOWED = {
    ("resviz/studies/reconcile.py", "torch.utils.flop_counter"): "loads torch's decompositions: slow to import",
    ("resviz/render/report/__init__.py", "resviz.render.report.html"): "Plotly (the reports extra) only for HTML",
    ("resviz/render/report/series.py", "resviz.render.report.series_html"): "Plotly (the reports extra) only for HTML",
    ("resviz/render/report/study.py", "resviz.render.report"): "Plotly (the reports extra) only for HTML",
}


def _function_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found += [(node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    found.append((node.lineno, node.module or "."))
    return found


def test_the_import_contracts_hold() -> None:
    script = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(script), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_no_import_hides_inside_a_function_below_the_surfaces() -> None:
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if path.relative_to(PACKAGE).parts[0] in LAZY_SURFACES:
            continue
        hidden += [f"{rel}:{line} imports {mod}" for line, mod in _function_imports(path) if (rel, mod) not in ALLOWED]
    assert not hidden, "\n".join(hidden)


def test_the_allowed_list_is_not_stale() -> None:
    for (rel, mod), _reason in ALLOWED.items():
        assert mod in {m for _, m in _function_imports(ROOT / rel)}, (rel, mod)


def test_records_are_plain_data() -> None:
    """Records import no tensor library: they can be read where PyTorch is not installed."""
    code = (
        "import sys; import resviz.records; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')); print(bad); sys.exit(bool(bad))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
