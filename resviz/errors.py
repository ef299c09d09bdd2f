"""The one exception type users see.

Every mistake a user can make (unknown model, impossible spec, input too small, bad checkpoint)
raises :class:`ResvizError` with a one-line message. Surfaces print the message and exit with
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ResvizError(ValueError):
    """A user error with a one-line, human-readable message."""


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type name when it has none: how resviz quotes a
    library's error (PyTorch's often run to many lines) inside its own one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
