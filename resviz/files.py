"""Files written whole or not at all, for every surface.

A failed or interrupted write must never leave a half-written output: data goes to a temporary
file in the target's folder and is renamed into place. Whether a path can be written is checked
first, so commands refuse before any work, in one line.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from resviz.errors import ResvizError, clip_path

#: Characters of the target's name kept in its temporary file's name: enough to tell which output
#: a leftover belongs to, short enough that the temporary name is never the one too long to create.
_TMP_NAME_CHARS = 32

#: The longest file name, in bytes, when the file system does not say (Linux, macOS and Windows
#: file systems all allow 255).
_DEFAULT_NAME_MAX = 255


def name_max(folder: Path) -> int:
    """The longest file name ``folder``'s file system takes, in bytes."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return _DEFAULT_NAME_MAX


def _tmp_prefix(target: Path) -> str:
    return f".{target.name[:_TMP_NAME_CHARS]}."


def check_writable(path: str | Path) -> Path:
    """Fail in one line when ``path`` cannot be written, so commands can check before any work.

    A missing folder, a folder where the file should go, a name longer than the file system
    takes, and a folder that refuses new files are caught. The last is probed by creating (and
    removing) an empty file: permission bits do not tell, since root passes every access check
    and pseudo file systems such as /proc accept none. Returns the folder.
    """
    target = Path(path)
    folder = target.parent
    shown = clip_path(target)
    if "\x00" in str(target):
        raise ResvizError(f"cannot write {shown}: a file name cannot contain a NUL character")
    try:
        if not folder.is_dir():
            raise ResvizError(f"cannot write {shown}: folder {clip_path(folder)} does not exist")
        size, most = len(os.fsencode(target.name)), name_max(folder)
        if size > most:
            raise ResvizError(f"cannot write {shown}: its name has {size} bytes, more than the {most} the file "
                              "system takes")
        if target.is_dir():
            raise ResvizError(f"cannot write {shown}: it is a folder")
    except OSError as exc:  # a folder name longer than the file system takes, a loop of links
        raise ResvizError(f"cannot write {shown}: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ResvizError(f"cannot write {shown}: folder {clip_path(folder)} is not writable "
                          f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return folder


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    Raises :class:`ResvizError` with one line when the path cannot be written (:func:`check_writable`).
    """
    target = Path(path)
    folder = check_writable(target)
    payload = data if isinstance(data, bytes) else data.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ResvizError(f"cannot write {clip_path(target)}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ResvizError(f"cannot write {clip_path(target)}: {exc.strerror or exc}") from None
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["check_writable", "name_max", "write_atomic"]
