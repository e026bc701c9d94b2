"""Atomic file output: write to a temporary file next to the target, then rename.

A report or CSV is either the complete new file or not there at all: a failure while
writing (a full disk, an exception in the renderer, a signal) removes the temporary
file and leaves any previous version of the target untouched, never a 0-byte or
truncated file. The rename is ``os.replace``, atomic on POSIX and Windows within one
file system, which is why the temporary file lives in the target's directory.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_text"]


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, newline: str | None = None,
                 encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Open a temporary text file beside ``path``; on success, move it onto ``path``.

    The directory is created if missing. The new file gets the permissions an ordinary
    ``open(path, "w")`` would give it (``0o666`` less the umask), or those of the file it
    replaces. The data is flushed and fsync'ed before the rename.

    Parameters
    ----------
    path : str or path
        Target file.
    newline, encoding : str
        As for :func:`open`.

    Yields
    ------
    file object
        Opened for writing text.

    Raises
    ------
    OSError
        If the directory cannot be created or written, or the write or rename fails;
        the temporary file is removed and ``path`` is unchanged.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        with os.fdopen(fd, "w", newline=newline, encoding=encoding) as fh:
            fd = -1
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, *,
                      encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OSError
        If the file cannot be written; ``path`` is then unchanged.
    """
    with atomic_write(path, encoding=encoding) as fh:
        fh.write(text)
    return Path(path)
