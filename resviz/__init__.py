"""resviz: see inside residual networks.

Public API (imported lazily, so ``import resviz`` costs no more than the pieces you use)::

    resviz.list_models()                       # preset names
    resviz.get_spec("resnet50")                # a frozen ResNetSpec
    resviz.build_model("resnet50", device="auto")
    resviz.summarize("resnet50", input_size="1x3x224x224")   # shapes, params, MACs (meta device)
    resviz.trace("resnet20", input_size="8x3x32x32")          # activations and branch gradients
    resviz.monitor(model, every=10)            # statistics during your own training loop
    resviz.save_series(mon.series, "run.json") # the run, read back by resviz.load_series
    resviz.write_series_report(series, "run.html")           # the run's report: HTML, Markdown or JSON
    resviz.diagram("resnet50", view="overview")               # a graphviz.Digraph
    resviz.compare(["resnet56", "plain56"], steps=20)         # gradient-flow comparison (a record)
    resviz.write_report(comparison, "report.html")           # self-contained HTML, Markdown or JSON
    resviz.study("signal", "resnet110")                       # a science study (+ the plain twin)
    resviz.write_study_report(result, "signal.html")         # its page (HTML) or every number (JSON)

Only the records and their notebook views load with the package (plain Python: no torch, no
IPython, no plotting library), so that a record shows as HTML in Jupyter however it was made.
"""

from __future__ import annotations

import importlib
from typing import Any

from resviz.render.notebook import register as _register_notebook_views

__version__ = "0.1.0"

# Records show as HTML in Jupyter through a registry that they consult and the renderers fill
# (resviz.records.display): filled here, since every record class is imported through this package.
_register_notebook_views()

_EXPORTS = {
    "ResvizError": "resviz.errors",
    "ResNetSpec": "resviz.spec",
    "BlockKind": "resviz.spec",
    "Shortcut": "resviz.spec",
    "Stem": "resviz.spec",
    "StrideAt": "resviz.spec",
    "load_spec_file": "resviz.spec",
    "Summary": "resviz.records",
    "Trace": "resviz.records",
    "MonitorSeries": "resviz.records",
    "Comparison": "resviz.records",
    "list_models": "resviz.zoo",
    "get_spec": "resviz.zoo",
    "build_model": "resviz.api",
    "ResNet": "resviz.api",
    "load_checkpoint": "resviz.api",
    "summarize": "resviz.api",
    "trace": "resviz.api",
    "monitor": "resviz.integrations.monitor",
    "compare": "resviz.api",
    "study": "resviz.api",
    "StudyKind": "resviz.records",
    "StudyResult": "resviz.records",
    "write_study_report": "resviz.output",
    "reconcile": "resviz.api",
    "diagram": "resviz.public",
    "render_html": "resviz.render.report",
    "render_markdown": "resviz.render.report",
    "write_report": "resviz.output",
    "load_series": "resviz.api",
    "save_series": "resviz.output",
    "write_series_report": "resviz.output",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'resviz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
