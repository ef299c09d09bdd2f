"""Drive headless Chromium over the DevTools protocol, to check and time the running dashboard.

The browser test and the dashboard benchmark need a real browser: Streamlit draws everything in
JavaScript over a websocket, so fetching the HTML shows nothing. Chromium's
``--remote-debugging-pipe`` speaks the DevTools protocol over file descriptors 3 and 4 (JSON
messages ended by a NUL byte), which needs neither a WebDriver binary of the matching version nor
a websocket client: only the Python standard library and Debian's ``chromium`` package.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

#: Flags for a quiet, sandbox-free headless run that reaches nothing but the given URL.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)

#: JavaScript that is true once the dashboard has drawn a diagram and stopped running. The sketch
#: shown while PyTorch loads (graph ``resviz_sketch``, see ``fallback.sketch_dot``) does not count.
DIAGRAM_READY = (
    "Array.from(document.querySelectorAll('[data-testid=\"stGraphVizChart\"] svg')).some("
    "s => (s.querySelector('g.graph > title')?.textContent ?? '') !== 'resviz_sketch') && "
    "!document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"],"
    "[data-testid=\"stStatusWidgetRunningManIcon\"],[data-testid=\"stSpinner\"]')"
)
#: JavaScript returning the text of every error alert and exception on the page.
PAGE_ERRORS = (
    "Array.from(document.querySelectorAll('[data-testid=\"stAlertContentError\"],"
    "[data-testid=\"stException\"]')).map(e => e.innerText)"
)


def find_chromium() -> str | None:
    """Debian's ``chromium`` (or another Chromium/Chrome on PATH), if installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> float:
    """Poll ``url`` until it answers 200; return the seconds waited."""
    start = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.05)


class Browser:
    """One headless Chromium page; use as a context manager so the process always ends."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1000) -> None:
        self._profile = tempfile.mkdtemp(prefix="resviz-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # in the child: the protocol lives on fds 3 (commands) and 4 (replies)
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Python's own descriptors are not inheritable (PEP 446), so only fds 3 and 4 pass.
            preexec_fn=wire, close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._next_id = 0
        self._session = ""
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in targets if t["type"] == "page")
        self._session = self.send("Target.attachToTarget", targetId=page, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply (events in between are skipped)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session:
            msg["sessionId"] = self._session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.perf_counter() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return dict(reply.get("result", {}))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.perf_counter()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return dict(json.loads(raw))

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.05) -> float:
        """Poll until ``expression`` is truthy; return the seconds waited."""
        start = time.perf_counter()
        while not self.evaluate(expression):
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"page did not satisfy {expression[:60]!r} within {timeout:.0f} s")
            time.sleep(interval)
        return time.perf_counter() - start

    def screenshot(self, path: str | Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._session = ""
            self.send("Browser.close", timeout=5)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.close()


class Dashboard:
    """``streamlit run app.py`` on a free localhost port, stopped on exit.

    The server's stderr goes to a temporary file, not a pipe: nobody reads a pipe while the server
    runs, and a full one would block the server's next write. :meth:`stop` reads the file back.
    """

    def __init__(self, app: str | Path, python: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Path(app)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server; closed in stop())
        self.proc = subprocess.Popen(
            [python, "-m", "streamlit", "run", str(app), "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=app.parent, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
        )
        try:
            self.startup_s = wait_http(f"{self.url}/_stcore/health", timeout=60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> str:
        """Stop the server; return what it wrote to stderr (for failure messages)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        return text

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()
