"""MkDocs hook: the page ``benchmarks.md`` is ``bench/RESULTS.md`` itself, added at build time.

Measured numbers live in ``bench/RESULTS.md`` only; the site shows that file as it is rather than a
copy that could go stale, and the other pages link to it instead of repeating its numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "RESULTS.md"
PAGE = "benchmarks.md"


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, PAGE, abs_src_path=str(RESULTS)))
    return files
