"""Helpers shared by the dashboard's AppTest tests: run the script, read its elements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import FileUploader

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def app(timeout: float = 60, **params: str) -> AppTest:
    """The dashboard after its first run with these URL parameters."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def metric(at: AppTest, label: str) -> str:
    return next(str(m.value) for m in at.metric if m.label == label)


def heading(at: AppTest) -> str:
    return str(at.subheader[0].value)


def figures_json(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def uploader(at: AppTest) -> FileUploader:
    return cast(FileUploader, at.get("file_uploader")[0])


def downloads(at: AppTest) -> list[str]:
    return [str(b.proto.label) for b in at.get("download_button")]
