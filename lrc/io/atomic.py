"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer of the project (NIfTI, DICOM SEG/RTSTRUCT, cached super-pixels) writes into a
temporary file beside its target and renames it into place; a failure removes the temporary file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom

from lrc.io.dicom_encode import presized


class OutputError(OSError):
    """An output cannot be written where it was asked for. ``errno`` is the cause's (a full disk stays
    a full disk); the message names the output, never the temporary file beside it."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def _output_error(path: Path, cause: OSError) -> OutputError:
    return OutputError(cause.errno, cause.strerror or str(cause), str(path))


def make_folder(folder: str | os.PathLike[str], named: str | os.PathLike[str] | None = None) -> Path:
    """Create ``folder`` and its parents.

    Raises:
        OutputError: naming ``named`` (default: ``folder``) and saying which part is in the way (a file).
    """
    folder = Path(folder)
    named = Path(named) if named is not None else folder
    blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        reason = "it is a file, not a folder" if blocking == named else f"{blocking} is a file, not a folder"
        raise OutputError(errno.ENOTDIR, reason, str(named))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(named, exc) from exc
    return folder


def _make_folder(path: Path) -> None:
    make_folder(path.parent, path)


def check_folder(path: str | os.PathLike[str]) -> Path:
    """Fail now, not after the work that fills it, if ``path``'s folder cannot be created or written to.
    Creates the missing folders, as the writers would.

    Raises:
        OutputError: naming ``path``.
    """
    path = Path(path)
    _make_folder(path)
    try:
        with tempfile.TemporaryFile(prefix=".tmp-", dir=path.parent):
            pass
    except OSError as exc:
        raise _output_error(path, exc) from exc
    return path


def check_output(path: str | os.PathLike[str]) -> Path:
    """:func:`check_folder`, and ``path`` must not be a folder.

    Raises:
        OutputError: naming ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(errno.EISDIR, "it is a folder; name a file", str(path))
    return check_folder(path)


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` keeps writers that choose a format by extension (nibabel's ``.nii.gz``) happy.

    Raises:
        OutputError: the folder cannot be created or written, ``path`` is a folder, or the writing
            failed with an ``OSError`` (a full disk).
    """
    path = Path(path)
    _make_folder(path)
    try:
        handle, name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise _output_error(path, exc) from exc
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _output_error(path, exc) from exc
        raise


def write_dataset(dataset: pydicom.Dataset, path: str | os.PathLike[str]) -> Path:
    """Save a DICOM dataset (with its file meta) atomically; return the path.

    The bytes are pydicom's; large sequences of plain items are encoded in one pass first.
    """
    dataset = presized(dataset)
    with atomic_path(path, ".dcm") as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return Path(path)
