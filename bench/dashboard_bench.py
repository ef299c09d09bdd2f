"""Dashboard timings: first render of the default view, and switching back to a model already seen.

Targets (on a 2-core CPU): the default view (resnet50, Architecture) fully rendered within
3 s after the server is up; switching back to a model already seen within 0.5 s (cached).

Two instruments:

* a real headless Chromium against ``streamlit run app.py`` (``tests/headless.py``): the
  time from navigating to the URL, right after ``/_stcore/health`` answers, until the real diagram's
  SVG is drawn and the app stopped running; measured for the first session of a fresh server
  (caches are in memory only, so every fresh server starts empty; PyTorch is imported while the
  server starts, see ``resviz.dashboard.warmup``) and for later sessions of the same server (a
  fresh page load; summaries and diagrams come from the cache). ``launch_to_first_render_s`` is
  the server's start plus its first render: what someone who opens the page the moment the server
  answers waits in all. Each of ``--runs`` runs starts a new server; the table shows the median and
  every run;
* ``streamlit.testing.v1.AppTest`` for the script itself: a cold first run, then the rerun after
  switching the model selector to resnet18 and back to resnet50 (median of ``--repeats`` switches).

Run: ``.venv/bin/python bench/dashboard_bench.py`` (``--no-browser`` without Chromium).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
sys.path.insert(0, str(ROOT / "tests"))  # the Chromium driver is test code: tests/headless.py

from headless import DIAGRAM_READY, PAGE_ERRORS, Browser, Dashboard, find_chromium  # noqa: E402


def browser_timings(app_path: Path = APP) -> dict[str, float]:
    """One fresh server: its start-up, the first render, then two later sessions."""
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("chromium is not installed; use --no-browser")
    out: dict[str, float] = {}
    with Browser(chromium) as browser:  # started first: its own start-up is not the app's
        browser.goto("about:blank")
        with Dashboard(app_path, sys.executable) as app:
            out["server_start_s"] = app.startup_s
            start = time.perf_counter()
            browser.goto(app.url)
            browser.wait_for(DIAGRAM_READY, timeout=120)
            out["first_render_s"] = time.perf_counter() - start
            out["launch_to_first_render_s"] = out["server_start_s"] + out["first_render_s"]
            if browser.evaluate(PAGE_ERRORS):
                raise SystemExit(f"the page shows errors: {browser.evaluate(PAGE_ERRORS)}")
            for label, query in (("other_model_new_session_s", "?model=resnet18"),
                                 ("seen_model_new_session_s", "?model=resnet50")):
                browser.goto("about:blank")
                start = time.perf_counter()
                browser.goto(f"{app.url}/{query}")
                browser.wait_for(DIAGRAM_READY, timeout=120)
                out[label] = time.perf_counter() - start
    return out


def apptest_timings(repeats: int, app_path: Path = APP) -> dict[str, float]:
    """Run in a fresh interpreter so that the cold first run really imports everything."""
    code = f"""
import json, statistics, time
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(app_path.resolve())!r}, default_timeout=120)
t = time.perf_counter(); at.run(); first = time.perf_counter() - t
assert not at.exception
other, back = [], []
def switch(name):
    t = time.perf_counter()
    at.selectbox(key="model").set_value(name).run()
    return time.perf_counter() - t
for _ in range({repeats}):
    other.append(switch("resnet18"))
    back.append(switch("resnet50"))
    assert not at.exception and at.subheader[0].value.startswith("resnet50")
print(json.dumps({{"apptest_first_run_s": first, "apptest_first_switch_s": other[0],
                  "apptest_switch_other_median_s": statistics.median(other[1:] or other),
                  "apptest_switch_back_median_s": statistics.median(back),
                  "apptest_switch_back_max_s": max(back)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="only the AppTest timings")
    parser.add_argument("--runs", type=int, default=5, help="fresh servers for the browser timings")
    parser.add_argument("--repeats", type=int, default=5, help="model switches in AppTest")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--app", type=Path, default=APP,
                        help="time another copy of app.py (an older one, for comparison)")
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    if not args.no_browser:
        runs = [browser_timings(args.app) for _ in range(args.runs)]
    apptest = apptest_timings(args.repeats, args.app)
    results: dict[str, Any] = {k: [r[k] for r in runs] for k in (runs[0] if runs else {})}
    results.update(apptest)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        if isinstance(value, list):
            each = " ".join(f"{v:.2f}" for v in value)
            print(f"{key:34s} {statistics.median(value):7.3f}  (median of {len(value)}: {each})")
        else:
            print(f"{key:34s} {value:7.3f}")


if __name__ == "__main__":
    main()
