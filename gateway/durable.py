"""Durable file writes: once a function here returns, the file survives a crash or power loss.

The data goes to a temporary file on the same file system, is flushed with ``fsync``, renamed
into place, and the directory entry is flushed too. A reader sees the whole file or none.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_temporary(data: bytes, tmp_dir: Path) -> Path:
    """Write ``data`` to a new, flushed file in ``tmp_dir``; :func:`commit` moves it into place."""
    handle, name = tempfile.mkstemp(prefix=".part-", dir=tmp_dir)
    try:
        with os.fdopen(handle, "wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def commit(tmp: Path, path: Path) -> None:
    """Rename a flushed temporary file to ``path`` (same file system) and flush the directory."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_durably(path: Path, data: bytes, tmp_dir: Path) -> Path:
    """Write ``data`` to ``path`` durably and atomically; return ``path``."""
    commit(write_temporary(data, tmp_dir), path)
    return path
