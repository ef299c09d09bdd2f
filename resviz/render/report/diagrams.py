"""Each model's ``gradient-flow`` and ``stages`` diagrams as inline SVG strings.

Rendering SVG needs Graphviz's ``dot`` program. Without it (or for a view a model cannot have,
such as the gradient-flow view of a plain net, which has no skip path) the report carries a note
in place of the picture instead of failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import graphviz

from resviz.errors import ResvizError, one_line
from resviz.records import ModelResult
from resviz.render.diagrams import dot_error, draw

VIEWS = ("gradient-flow", "stages")
_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)


@dataclass(frozen=True)
class DiagramSvg:
    """One view of one model: ``svg`` markup, or ``note`` saying why there is none."""

    model: str
    view: str
    svg: str = ""
    note: str = ""


def model_diagrams(m: ModelResult) -> list[DiagramSvg]:
    if m.summary is None:
        note = "no static analysis in this result (read back from JSON): run the comparison again to draw it"
        return [DiagramSvg(m.name, view, note=note) for view in VIEWS]
    out: list[DiagramSvg] = []
    for view in VIEWS:
        try:
            dig = draw(m.summary, view=view, trace=m.trace)
            svg = dig.pipe(format="svg").decode("utf-8")
        except ResvizError as exc:
            out.append(DiagramSvg(m.name, view, note=one_line(exc)))
        except graphviz.ExecutableNotFound:
            out.append(DiagramSvg(
                m.name, view, note="Graphviz's dot program was not found: install graphviz to embed this diagram",
            ))
        except graphviz.CalledProcessError as exc:
            out.append(DiagramSvg(m.name, view, note=f"Graphviz's dot failed: {dot_error(exc)}"))
        else:
            out.append(DiagramSvg(m.name, view, svg=_PROLOG.sub("", svg, count=1)))
    return out
