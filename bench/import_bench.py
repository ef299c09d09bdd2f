"""Start-up cost of ``import resviz`` and ``from resviz import monitor``, against ``import torch``.

Goal: both within 1.1x ``python -c "import torch"`` measured in the same run, and neither loads an
optional package (streamlit, plotly, pandas, scikit-learn, fvcore, torchinfo, Pillow; also checked
by ``tests/test_extras.py``). Whole processes, interleaved so that background load hits every side
alike; medians compared (min shown too). Then resviz's own share: the time of
``from resviz import monitor`` in a process that has already imported torch.

    .venv/bin/python bench/import_bench.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
OPTIONAL = ("streamlit", "plotly", "pandas", "sklearn", "fvcore", "torchinfo", "PIL")
CASES = {
    "import torch": "import torch",
    "import resviz": "import resviz",
    "from resviz import monitor": "from resviz import monitor",
}


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([PY, "-c", code], check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def loaded_optional(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r})))"
    out = subprocess.run([PY, "-c", probe], check=True, cwd=ROOT, capture_output=True, text=True).stdout
    return list(eval(out.strip().splitlines()[-1]))  # a list literal printed by the probe


def own_share_ms() -> float:
    """Milliseconds of ``from resviz import monitor`` once torch is imported."""
    code = "import time, torch\nt = time.perf_counter()\nfrom resviz import monitor\nprint(time.perf_counter() - t)"
    out = subprocess.run([PY, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True).stdout
    return 1000 * float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    timed("import torch")  # warm the file cache once for every side
    runs: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, code in CASES.items():
            runs[name].append(timed(code))
    shares = [own_share_ms() for _ in range(3)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    base, base_min = statistics.median(runs["import torch"]), min(runs["import torch"])
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"commit {commit}, {args.repeats} interleaved runs, load average {os.getloadavg()[0]:.1f} at the end")
    print("| process | median s | min s | ratio to import torch (median; min/min) | optional packages loaded |")
    print("|---|---|---|---|---|")
    for name, code in CASES.items():
        med, low = statistics.median(runs[name]), min(runs[name])
        print(f"| `python -c '{code}'` | {med:.2f} | {low:.2f} | {med / base:.2f}x; {low / base_min:.2f}x | "
              f"{', '.join(loaded_optional(code)) or 'none'} |")
    print(f"`from resviz import monitor` after `import torch`, in-process (3 runs): "
          f"{', '.join(f'{s:.0f} ms' for s in shares)}")


if __name__ == "__main__":
    main()
