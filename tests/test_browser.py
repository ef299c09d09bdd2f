"""The dashboard in a real headless Chromium: it starts, draws the default diagram, shows no error.

Needs Debian's ``chromium`` package (no WebDriver: the page is driven over Chromium's
``--remote-debugging-pipe``). Skips only when no Chromium executable exists at all. Saves the
screenshot shown in the README to ``assets/dashboard.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from resviz.dashboard.headless import DIAGRAM_READY, PAGE_ERRORS, Browser, Dashboard, find_chromium

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"),
]

NODES = "document.querySelectorAll('[data-testid=\"stGraphVizChart\"] svg g.node').length"


def test_dashboard_renders_in_chromium() -> None:
    assert CHROMIUM is not None
    with Dashboard(ROOT / "app.py", sys.executable) as app, Browser(CHROMIUM) as browser:
        browser.goto(app.url)
        browser.wait_for(DIAGRAM_READY, timeout=120)
        assert browser.evaluate(PAGE_ERRORS) == []
        text = browser.evaluate("document.body.innerText")
        assert "resnet50 · 3x224x224" in text and "25.6M" in text
        assert browser.evaluate(NODES) >= 5
        shot = browser.screenshot(ROOT / "assets" / "dashboard.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

        # A shared link with an impossible spec shows one readable error and keeps the app alive.
        browser.goto(f"{app.url}/?model=custom&layers=0,2,2,2")
        browser.wait_for(f"{PAGE_ERRORS}.length > 0", timeout=60)
        errors = browser.evaluate(PAGE_ERRORS)
        assert len(errors) == 1 and "at least 1 block" in errors[0]
        assert "Traceback" not in browser.evaluate("document.body.innerText")
