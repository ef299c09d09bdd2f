"""Run benchmarks on two commits, interleaved, so that both see the same machine load.

Each commit is checked out in a temporary git worktree and imported from there (``PYTHONPATH``);
every benchmark runs its own script of that commit, alternately A B B A ... for ``--rounds``
rounds, and the full output of every run is kept. The numbers to compare are read off the outputs
(each benchmark prints its own table); this script only makes the runs fair and keeps them.

Usage::

    python bench/ab.py --before 87ca157 --after HEAD --rounds 2 -o ab.json
    python bench/ab.py --only trace_cpu --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> the benchmark's command line (run in the commit's worktree with this interpreter).
BENCHES: dict[str, list[str]] = {
    "static_bench": ["bench/static_bench.py", "--runs", "5"],
    "diagram_bench": ["bench/diagram_bench.py", "--repeats", "5"],
    "trace_cpu": ["bench/trace_cpu.py", "--reps", "5", "--loop", "10"],
    "compare_bench": ["bench/compare_bench.py", "--repeats", "3"],
    "dashboard_bench": ["bench/dashboard_bench.py", "--runs", "3", "--repeats", "3"],
}


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _run(tree: Path, cmd: list[str]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    res = subprocess.run([sys.executable, *cmd], cwd=tree, env=env, capture_output=True, text=True)
    return {"seconds": round(time.perf_counter() - start, 2), "rc": res.returncode,
            "stdout": res.stdout, "stderr": res.stderr[-2000:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="HEAD~1")
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="benchmarks to run (default: all)")
    ap.add_argument("-o", "--output", type=Path, help="write every run's output as JSON")
    args = ap.parse_args()
    names = args.only or list(BENCHES)
    commits = {"A": _git("rev-parse", "--short", args.before), "B": _git("rev-parse", "--short", args.after)}
    with tempfile.TemporaryDirectory(prefix="resviz-ab-") as tmp:
        trees = {k: Path(tmp) / k for k in commits}
        for key, rev in commits.items():
            _git("worktree", "add", "--detach", "-q", str(trees[key]), rev)
        runs: list[dict[str, object]] = []
        try:
            for name in names:
                for r in range(args.rounds):
                    for key in ("A", "B") if r % 2 == 0 else ("B", "A"):
                        out = _run(trees[key], BENCHES[name])
                        runs.append({"bench": name, "round": r, "commit": commits[key], **out})
                        print(f"== {name} round {r} {key}={commits[key]} ({out['seconds']} s, rc {out['rc']})")
                        print(str(out["stdout"]).rstrip(), flush=True)
        finally:
            for tree in trees.values():
                _git("worktree", "remove", "--force", str(tree))
    if args.output:
        args.output.write_text(json.dumps({"commits": commits, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
