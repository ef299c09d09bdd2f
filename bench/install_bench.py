"""Install size and time: the core (``pip install resviz``) against every extra (``resviz[all]``).

Builds the wheel once (``python -m build --wheel`` in a copy of the work tree's files), then for
each round and each of ``core`` and ``all``, alternately: a fresh virtual environment (``python -m venv``), torch first
(``TORCH_SPEC``, default ``torch==2.13.0``, with ``TORCH_PIP_ARGS`` as in the Makefile), then the
wheel (``core``) or the wheel with ``[all]`` (``all``). Prints the seconds of each pip step and the
environment's size in MB (``du -sm``, torch and pip included in both).

Usage::

    python bench/install_bench.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _du_mb(path: Path) -> int:
    return int(subprocess.run(["du", "-sm", str(path)], check=True, capture_output=True, text=True).stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    torch_spec = os.environ.get("TORCH_SPEC") or "torch==2.13.0"
    torch_args = shlex.split(os.environ.get("TORCH_PIP_ARGS", ""))
    results: dict[str, list[tuple[float, float, int]]] = {"core": [], "all": []}
    with tempfile.TemporaryDirectory(prefix="resviz-install-") as tmp:
        dist, src = Path(tmp) / "dist", Path(tmp) / "src"
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True).stdout.decode().split("\0")
        for rel in filter(None, listed):
            if (ROOT / rel).is_file():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, src / rel)
        _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)])
        wheel = next(dist.glob("*.whl"))
        for r in range(args.rounds):
            for kind in (("core", "all") if r % 2 == 0 else ("all", "core")):
                venv = Path(tmp) / f"{kind}-{r}"
                _run([sys.executable, "-m", "venv", str(venv)])
                pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
                t_torch = _run([*pip, *torch_args, torch_spec])
                target = str(wheel) if kind == "core" else f"resviz[all] @ {wheel.as_uri()}"
                t_resviz = _run([*pip, target])
                size = _du_mb(venv)
                results[kind].append((t_torch, t_resviz, size))
                print(f"round {r} {kind}: torch {t_torch:.1f} s, resviz {t_resviz:.1f} s, {size} MB", flush=True)
                subprocess.run(["rm", "-rf", str(venv)], check=True)
    print("\n| install | torch step (s) | resviz step (s) | total (s) | venv size (MB, du -sm) |")
    print("|---|---:|---:|---:|---:|")
    for kind, rows in results.items():
        t, rz, mb = (statistics.median(col) for col in zip(*rows, strict=True))
        name = "`pip install resviz` (core)" if kind == "core" else "`pip install 'resviz[all]'`"
        print(f"| {name} | {t:.1f} | {rz:.1f} | {t + rz:.1f} | {mb:.0f} |")


if __name__ == "__main__":
    main()
