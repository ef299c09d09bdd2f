"""What ``pip install resviz`` (no extras) must do: run as a script, exit 0 when it all holds.

The core (torch, numpy, graphviz, typer, rich, pyyaml, safetensors) runs the summary, the tracer,
the monitor, the diagrams, Markdown/JSON comparison reports on synthetic data and the command line;
every feature of an extra refuses in one line naming the extra (exit code 2 in the CLI).

Two ways to run it:

* ``python tests/core_only.py --block WORKDIR``: in the development environment, with every
  optional package made unimportable (``sys.modules[name] = None``), the commands run in this
  process through Typer's test runner (``tests/test_extras.py``);
* ``VENV/bin/python core_only.py --resviz VENV/bin/resviz WORKDIR``: in a clean virtual
  environment holding the built wheel and its core dependencies only, the commands run as real
  processes of the installed ``resviz`` (``tests/heavy/test_package.py``).

Only the standard library and resviz are imported: the clean environment has no pytest.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

#: Top-level import names of every optional package (the extras in pyproject.toml).
OPTIONAL = ("streamlit", "plotly", "pandas", "sklearn", "fvcore", "torchinfo", "PIL", "tensorboard", "lightning")

#: (arguments, the one line on stderr): features that need an extra, refused with exit code 2.
#: ``{work}`` is the working directory.
REFUSED: tuple[tuple[list[str], str], ...] = (
    (["flops", "resnet18", "--reconcile"],
     "error: the counter reconciliation needs fvcore: pip install 'resviz[reconcile]'"),
    (["compare", "resnet20", "plain20", "-q", "-o", "{work}/r.html"],
     "error: an HTML report needs plotly: pip install 'resviz[reports]'"),
    (["compare", "resnet20", "plain20", "--data", "digits", "-q", "-o", "{work}/d.md"],
     "error: --data digits needs scikit-learn: pip install 'resviz[data]'"),
    (["compare", "resnet20", "plain20", "--data", "{work}/images", "-q", "-o", "{work}/f.md"],
     "error: an image folder (--data PATH) needs pillow: pip install 'resviz[data]'"),
    (["dashboard"], "error: the dashboard needs streamlit: pip install 'resviz[dashboard]'"),
    (["report-series", "{work}/run.json", "-o", "{work}/run.html"],
     "error: an HTML report needs plotly: pip install 'resviz[reports]'"),
)

#: Modules whose import needs an extra, and the one-line message it raises.
REFUSED_IMPORTS = (
    ("resviz.dashboard.compute", "the dashboard needs streamlit: pip install 'resviz[dashboard]'"),
    ("resviz.render.figures", "Plotly figures needs plotly: pip install 'resviz[reports]'"),
    ("resviz.integrations.tensorboard", "TensorBoard logging needs tensorboard: pip install 'resviz[tensorboard]'"),
)

#: Files the package must ship (``[tool.setuptools.package-data]``).
PACKAGE_DATA = ("py.typed", "data/catalog.json", "render/report/assets/report.html",
                "render/report/assets/report.css", "render/report/assets/series.html", "dashboard/app.py")

Runner = Callable[[list[str]], tuple[int, str, str]]


def in_process() -> Runner:
    from typer.testing import CliRunner

    from resviz.cli import app

    runner = CliRunner()

    def run(args: list[str]) -> tuple[int, str, str]:
        res = runner.invoke(app, args)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return res.exit_code, res.stdout, res.stderr

    return run


def as_processes(resviz: str) -> Runner:
    def run(args: list[str]) -> tuple[int, str, str]:
        res = subprocess.run([resviz, *args], capture_output=True, text=True, timeout=600)
        return res.returncode, res.stdout, res.stderr

    return run


def check(ok: bool, what: str, detail: str = "") -> None:
    if not ok:
        raise SystemExit(f"FAILED: {what}\n{detail[-3000:]}")
    print(f"ok: {what}")


def check_cli(run: Runner, work: Path) -> None:
    def ok(args: list[str]) -> str:
        rc, out, err = run([a.format(work=work) for a in args])
        check(rc == 0, "resviz " + " ".join(args), out + err)
        return out

    usage = ok(["--help"])
    check("summary" in usage and "trace" in usage, "--help lists the commands")
    check("resnet18" in ok(["list"]), "resviz list names the presets")
    check("resnet18" in ok(["summary", "resnet18"]), "resviz summary resnet18 prints a table")
    ok(["trace", "resnet20", "--input", "2x3x32x32", "-o", "{work}/t.json"])
    trace = json.loads((work / "t.json").read_text())
    check(len(trace["blocks"]) == 9, "the trace of resnet20 has 9 blocks", str(trace.keys()))
    ok(["diagram", "resnet18", "-o", "{work}/x.dot"])
    check((work / "x.dot").read_text().lstrip().startswith("digraph"), "the diagram is a DOT source")
    ok(["compare", "resnet20", "plain20", "--steps", "2", "--batch", "2", "--input", "3x16x16", "-q",
        "-o", "{work}/r.md"])
    check((work / "r.md").is_file() and (work / "r.json").is_file(), "a Markdown report and its JSON on synthetic data")

    images = work / "images"
    for cls in ("a", "b"):
        (images / cls).mkdir(parents=True, exist_ok=True)
        (images / cls / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for args, line in REFUSED:
        rc, out, err = run([a.format(work=work) for a in args])
        check(rc == 2 and err.strip() == line, f"resviz {' '.join(args[:3])} ... refused: {line}",
              f"rc={rc}\nstdout={out}\nstderr={err}")


def check_python(work: Path) -> None:
    import torch
    from torch import nn

    import resviz
    from resviz.errors import ResvizError

    model = resviz.build_model("resnet20")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    with resviz.monitor(model, every=1) as mon:
        for _ in range(2):
            x, y = torch.randn(2, 3, 32, 32, generator=gen), torch.randint(0, 10, (2,), generator=gen)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            mon.log_loss(loss.item())
    check(len(mon.series.steps) == 2, "resviz.monitor records a 2-step loop", repr(mon.series.steps))
    import graphviz

    check(isinstance(resviz.diagram("resnet18"), graphviz.Digraph), "resviz.diagram returns a graphviz.Digraph")

    for module, line in REFUSED_IMPORTS:
        try:
            importlib.import_module(module)
        except ResvizError as exc:
            check(str(exc) == line, f"import {module} refused: {line}", str(exc))
        else:
            check(False, f"import {module} refused", "it imported")

    root = importlib.resources.files("resviz")
    for name in PACKAGE_DATA:
        check(root.joinpath(name).is_file(), f"package data {name} is present")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path, help="an empty working directory")
    ap.add_argument("--block", action="store_true", help="make the optional packages unimportable")
    ap.add_argument("--resviz", help="run this installed `resviz` as processes (default: in this process)")
    args = ap.parse_args()
    if args.block:
        for name in OPTIONAL:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ModuleNotFoundError
    else:
        found = [name for name in OPTIONAL if importlib.util.find_spec(name) is not None]
        check(not found, "no optional package is installed", ", ".join(found))
    args.work.mkdir(parents=True, exist_ok=True)
    check_cli(as_processes(args.resviz) if args.resviz else in_process(), args.work)
    check_python(args.work)
    print("all core-only checks passed")


if __name__ == "__main__":
    main()
