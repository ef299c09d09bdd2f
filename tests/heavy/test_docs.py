"""The documentation site builds, strictly and offline, and holds what it promises.

``mkdocs build --strict`` from the repository root (the ``docs`` extra: MkDocs, Material for MkDocs,
mkdocstrings), then the built pages are read back: the CLI reference has every command that
``resviz --help`` lists and every option of each, the API page documents ``summarize``, the
promises page is in the site and its navigation, and no page asks for web fonts.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main

from resviz.cli import app

pytestmark = pytest.mark.heavy

for _module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
    pytest.importorskip(_module, reason="the docs extra is not installed: pip install -e '.[docs]'")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    took = time.perf_counter() - start
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    print(f"mkdocs build --strict took {took:.1f} s")
    return out


def text_of(page: Path) -> str:
    """The visible text of a built page (tags dropped, entities decoded)."""
    raw = page.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


def help_commands() -> list[str]:
    """Command names as ``resviz --help`` lists them (rich panel or plain click layout)."""
    out = subprocess.run(
        [sys.executable, "-m", "resviz", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    ).stdout
    names: list[str] = []
    in_commands = False
    for line in out.splitlines():
        if "Commands" in line:
            in_commands = True
            continue
        if in_commands:
            m = re.match(r"^[\s│|]*([a-z][\w-]*)\s{2,}\S", line)
            if m:
                names.append(m.group(1))
            elif names:
                break
    return names


def test_cli_reference_has_every_command_and_option(site: Path) -> None:
    group = typer.main.get_command(app)
    listed = help_commands()
    assert sorted(listed) == sorted(group.commands), listed  # what --help shows is what the app has
    page = text_of(site / "cli" / "index.html")
    ctx = group.make_context("resviz", [], resilient_parsing=True)
    for name in listed:
        assert f"resviz {name}" in page, name
        cmd = group.get_command(ctx, name)
        for param in cmd.params:
            if getattr(param, "hidden", False):
                continue
            for opt in (*param.opts, *param.secondary_opts):
                if opt.startswith("-"):
                    assert opt in page, f"{name}: option {opt} missing from the CLI reference"


def test_api_page_documents_the_public_functions(site: Path) -> None:
    raw = (site / "api" / "index.html").read_text(encoding="utf-8")
    for anchor in (
        "resviz.api.summaries.summarize", "resviz.api.tracing.trace", "resviz.integrations.monitor.monitor",
        "resviz.api.comparing.compare", "resviz.public.diagram", "resviz.output.write_report",
        "resviz.model.resnet.build_model",
    ):
        assert f'id="{anchor}"' in raw, anchor
    page = text_of(site / "api" / "index.html")
    assert "Shapes, parameters, MACs" in page  # summarize's docstring, read from the source
    assert ":func:" not in page and ":class:" not in page  # Sphinx roles rendered as code
    assert (site / "api" / "records" / "index.html").is_file()
    assert (site / "api" / "spec" / "index.html").is_file()


def test_promises_page_is_built_and_in_the_navigation(site: Path) -> None:
    assert (site / "promises" / "index.html").is_file()
    assert 'href="promises/"' in (site / "index.html").read_text(encoding="utf-8")
    assert "Promises under bad input" in text_of(site / "promises" / "index.html")


def test_site_reads_offline(site: Path) -> None:
    for page in site.rglob("*.html"):
        raw = page.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in raw and "fonts.gstatic.com" not in raw, page
    gallery = (site / "gallery" / "index.html").read_text(encoding="utf-8")
    images = re.findall(r'<img [^>]*src="([^"]+\.svg)"', gallery)
    assert images
    for src in images:
        assert (site / "gallery" / src).resolve().is_file(), src
    benchmarks = text_of(site / "benchmarks" / "index.html")
    assert "Benchmark results" in benchmarks  # bench/RESULTS.md, shown as it is
