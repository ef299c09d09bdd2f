"""How a record shows itself in Jupyter: ``_repr_html_`` and ``_repr_pretty_`` that ask a registry.

Design. Jupyter asks an object for rich output by calling its ``_repr_html_`` method, and IPython
prints its text through ``_repr_pretty_`` (duck typing: resviz never imports IPython for this).
Drawing is the render layer's job, and records import nothing above themselves, so the records hold
only this hook: each displayable record class mixes in :class:`NotebookRepr`, whose methods look
the record's class up in a registry of :class:`View` objects (plain functions ``record -> str``).
:mod:`resviz.render.notebook` fills the registry, and the ``resviz`` package registers it when
imported, which every record class's import goes through; so a record shows as HTML however it was
made (``resviz.summarize``, ``Summary.from_dict``), and the records stay plain data that import no
renderer.

Alternatives left aside: HTML functions inside the records package would put presentation (and a
second copy of the number formatting in :mod:`resviz.render.format`) below the renderers; IPython
display formatters registered with ``get_ipython()`` would need IPython imported, or a user's call,
before the first record is shown. Without a registered view ``_repr_html_`` returns None and the
text is the dataclass ``repr``, as before; ``repr()`` itself never changes.

The text view matters as much as the HTML: a notebook stores every output's ``text/plain`` beside
its HTML, and the dataclass repr of a comparison runs to megabytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class View:
    """How one record class shows in a notebook: an HTML fragment and a one-line text."""

    html: Callable[[Any], str]
    text: Callable[[Any], str]


_VIEWS: dict[type, View] = {}


def register_view(kind: type, view: View) -> None:
    """Show records of class ``kind`` (and its subclasses) in notebooks through ``view``."""
    _VIEWS[kind] = view


def view_of(kind: type) -> View | None:
    """The view registered for ``kind`` or the nearest of its base classes; None if none is."""
    for base in kind.__mro__:
        found = _VIEWS.get(base)
        if found is not None:
            return found
    return None


class NotebookRepr:
    """Mixed into a record class: Jupyter shows the record through its registered :class:`View`."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give each record class its own ``_repr_pretty_``: IPython's printer walks the class's bases
        and stops at the first that defines ``__repr__`` (every dataclass does) unless that same class
        also defines ``_repr_pretty_``."""
        super().__init_subclass__(**kwargs)
        cls._repr_pretty_ = NotebookRepr._repr_pretty_  # type: ignore[method-assign]

    def _repr_html_(self) -> str | None:
        """The record as an HTML fragment, or None (plain text only) while no view is registered."""
        view = view_of(type(self))
        return view.html(self) if view is not None else None

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's text of the record: its one-line view, or ``repr`` while none is registered."""
        view = view_of(type(self))
        printer.text(view.text(self) if view is not None else repr(self))


__all__ = ["NotebookRepr", "View", "register_view", "view_of"]
