"""A ``graphviz.Digraph`` that shows itself in a notebook cell at a size that fits.

graphviz's own ``_repr_mimebundle_`` (``graphviz.jupyter_integration``) renders the graph with
``dot`` to SVG (or to the PNG/JPEG chosen with ``graphviz.set_jupyter_format``) at its natural size:
ResNet-152's layer view is several thousand points wide or tall, and a cell shows it clipped or
behind scroll bars. Every diagram resviz draws is a :class:`FittedDigraph`; it keeps all of
graphviz's behaviour (source, ``render``, ``pipe``, the same mime types) and only resizes the SVG it
hands to Jupyter with :func:`resviz.render.svg.fit_svg`. Graph attributes such as ``size`` are left
alone, so files written by the CLI keep their natural size. There is deliberately no ``_repr_svg_``:
IPython would call it beside the mime bundle whenever ``graphviz.set_jupyter_format`` chose PNG,
running ``dot`` twice and overriding that choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import graphviz

from resviz.render.svg import fit_svg

SVG_MIME = "image/svg+xml"
NO_DOT = ("drawing a diagram needs Graphviz's dot program (apt-get install graphviz, brew install graphviz); "
          "the DOT source is in .source")


class FittedDigraph(graphviz.Digraph):
    """A Digraph whose notebook SVG is scaled down to the cell width, never clipped."""

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None, **kwargs: Any,
    ) -> dict[str, bytes | str]:
        """graphviz's mime bundle, with its SVG (when asked for) resized by :func:`fit_svg`; without
        Graphviz's ``dot`` program, one line saying so instead of a traceback."""
        try:
            bundle: dict[str, bytes | str] = super()._repr_mimebundle_(include=include, exclude=exclude, **kwargs)
        except graphviz.ExecutableNotFound:
            return {"text/plain": NO_DOT}
        svg = bundle.get(SVG_MIME)
        if isinstance(svg, str):
            bundle[SVG_MIME] = fit_svg(svg)
        return bundle


__all__ = ["NO_DOT", "FittedDigraph"]
