"""The one exception type users see, and how its messages quote what users typed.

Every mistake a user can make (unknown model, impossible spec, input too small, bad checkpoint)
raises :class:`ResvizError` with a one-line message. Surfaces print the message and exit with
code 2; anything else is a bug and keeps its traceback. A message quotes a user's value through
:func:`clip`, so a pasted file or a thousand-digit number cannot make it long or break its line.
"""

from __future__ import annotations

#: How many characters of a user's value a message quotes: enough to recognise it, never enough
#: to flood a terminal or a log.
ECHO_CHARS = 80

#: How many characters of a path a message quotes: paths run longer than other values, and a cut
#: one must still be recognisable.
PATH_CHARS = 320

#: The longest line :func:`one_line` passes on; resviz's own messages stay far shorter, a library's
#: may not.
_LINE_CHARS = 1000

#: Integers longer than this many bits are described, not printed (Python refuses to print
#: integers of more than 4300 digits at all).
_ECHO_BITS = 256


class ResvizError(ValueError):
    """A user error with a one-line, human-readable message."""


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type name when it has none: how resviz quotes a
    library's error (PyTorch's often run to many lines) inside its own one-line message."""
    text = str(exc).strip()
    return clip(text.splitlines()[0], _LINE_CHARS) if text else type(exc).__name__


def clip(value: object, limit: int = ECHO_CHARS) -> str:
    """``value`` as a message quotes it: on one line (control characters escaped) and at most
    ``limit`` characters, with the full length said when it is cut; huge integers by their size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _ECHO_BITS:
        return f"a {int(value.bit_length() * 0.30103) + 1}-digit number"
    text = str(value)
    head = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    if len(head) <= limit and len(text) <= limit:
        return head
    return f"{head[:limit]}... ({len(text)} characters)"


def quote(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` clipped (:func:`clip`); the repr of a huge container is never built whole."""
    if isinstance(value, (list, tuple, dict, set)) and len(value) > limit:
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _ECHO_BITS:
        return clip(value, limit)
    if isinstance(value, str) and len(value) > limit:
        return f"{clip(repr(value[:limit]), limit + 2)}... ({len(value)} characters)"
    return clip(repr(value), limit + 2)


def clip_path(path: object) -> str:
    """A file or folder name as a message quotes it (:func:`clip` at :data:`PATH_CHARS`)."""
    return clip(path, PATH_CHARS)
