"""The dashboard in a real headless Chromium: it starts, draws the default diagram, shows no error.

Needs Debian's ``chromium`` package (no WebDriver: the page is driven over Chromium's
``--remote-debugging-pipe``). Skips only when no Chromium executable exists at all. Every run saves
its screenshot as ``assets/screenshots/dashboard.png`` (ignored by git, so a test run leaves the
work tree clean); with ``RESVIZ_UPDATE_ASSETS=1`` it refreshes ``assets/dashboard.png``, the one
shown in the README.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from headless import DIAGRAM_READY, PAGE_ERRORS, Browser, Dashboard, find_chromium

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"),
]

NODES = "document.querySelectorAll('[data-testid=\"stGraphVizChart\"] svg g.node').length"
GRAPHS = ("Array.from(document.querySelectorAll('[data-testid=\"stGraphVizChart\"] svg g.graph > title'))"
          ".map(t => t.textContent)")


def screenshot_path() -> Path:
    """``assets/dashboard.png`` when asked for (``RESVIZ_UPDATE_ASSETS=1``), else the ignored copy."""
    if os.environ.get("RESVIZ_UPDATE_ASSETS", "") not in ("", "0"):
        return ROOT / "assets" / "dashboard.png"
    folder = ROOT / "assets" / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder / "dashboard.png"


def test_dashboard_renders_in_chromium() -> None:
    assert CHROMIUM is not None
    with Dashboard(ROOT / "app.py", sys.executable) as app, Browser(CHROMIUM) as browser:
        browser.goto(app.url)
        browser.wait_for(DIAGRAM_READY, timeout=120)
        assert browser.evaluate(PAGE_ERRORS) == []
        text = browser.evaluate("document.body.innerText")
        assert "resnet50 · 3x224x224" in text and "25.6M" in text
        assert browser.evaluate(NODES) >= 5
        assert "resviz_sketch" not in browser.evaluate(GRAPHS)  # the placeholder gave way
        shot = browser.screenshot(screenshot_path())
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

        # A shared link with an impossible spec shows one readable error and keeps the app alive.
        browser.goto(f"{app.url}/?model=custom&layers=0,2,2,2")
        browser.wait_for(f"{PAGE_ERRORS}.length > 0", timeout=60)
        errors = browser.evaluate(PAGE_ERRORS)
        assert len(errors) == 1 and "at least 1 block" in errors[0]
        assert "Traceback" not in browser.evaluate("document.body.innerText")
