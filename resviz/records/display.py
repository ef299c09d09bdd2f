"""How a record shows itself in Jupyter: ``_repr_html_`` that asks a registry for its HTML.

Design. Jupyter asks an object for rich output by calling its ``_repr_html_`` method (duck typing:
IPython never needs to be imported by resviz for this). Drawing HTML is the render layer's job, and
records import nothing above themselves, so the records hold only this hook: each displayable record
class mixes in :class:`HtmlRepr`, whose ``_repr_html_`` looks the record's class up in a registry
of plain functions ``record -> str``. :mod:`resviz.render.notebook` fills the registry, and the
``resviz`` package registers it when imported, which every record class's import goes through, so
a record shows as HTML however it was made (``resviz.summarize``, ``Summary.from_dict``) and the
records stay plain data that import no renderer.

Alternatives left aside: HTML functions inside the records package would put presentation (and a
second copy of the number formatting in :mod:`resviz.render.format`) below the renderers; IPython
display formatters registered with ``get_ipython()`` would need IPython imported, or a user's call,
before the first record is shown. Without a registered renderer ``_repr_html_`` returns None, and
Jupyter falls back to the plain ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HtmlRenderer = Callable[[Any], str]
"""A function that draws one record as an HTML fragment."""

_RENDERERS: dict[type, HtmlRenderer] = {}


def register_html(kind: type, renderer: HtmlRenderer) -> None:
    """Show records of class ``kind`` (and its subclasses) in notebooks as ``renderer(record)``."""
    _RENDERERS[kind] = renderer


def html_renderer(kind: type) -> HtmlRenderer | None:
    """The renderer registered for ``kind`` or the nearest of its base classes; None if none is."""
    for base in kind.__mro__:
        found = _RENDERERS.get(base)
        if found is not None:
            return found
    return None


class HtmlRepr:
    """Mixed into a record class: Jupyter shows the record as its registered HTML."""

    __slots__ = ()

    def _repr_html_(self) -> str | None:
        """The record as an HTML fragment, or None (plain ``repr``) while no renderer is registered."""
        renderer = html_renderer(type(self))
        return renderer(self) if renderer is not None else None


__all__ = ["HtmlRenderer", "HtmlRepr", "html_renderer", "register_html"]
