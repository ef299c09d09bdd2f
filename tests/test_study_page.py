"""The dashboard's Studies page driven through Streamlit's AppTest: a signal study of resnet20 and its
plain twin at a small input, its findings, figures and downloads, and a one-line error for bad input."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

import resviz
from resviz.render.report.study_html import study_findings

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_studies_page_runs_signal_and_offers_the_report() -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["model"] = "resnet20"
    at.query_params["page"] = "Studies"
    at.run()
    assert not at.exception
    assert at.multiselect(key="study_models").value == ["resnet20"]
    at.text_input(key="study_input").set_value("4x3x8x8")
    at.button(key="study_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    want = resviz.study("signal", "resnet20", input_size="4x3x8x8", device="auto")
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert all(f"- {line}" in shown for line in study_findings(want))
    charts = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    assert len(charts) >= 2 and charts[0]["data"]
    labels = [str(b.proto.label) for b in at.get("download_button")]
    assert labels == ["Download HTML report", "Download JSON"]
    at.selectbox(key="study_kind").set_value("shatter").run()
    at.text_input(key="study_input").set_value("2x3x8x8")
    at.button(key="study_go").click().run()
    assert not at.exception
    assert any("takes CxHxW" in str(e.value) for e in at.error)
