"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer of the project (NIfTI, DICOM SEG/RTSTRUCT, cached super-pixels) writes into a
temporary file beside its target and renames it into place; a failure removes the temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom

from lrc.io.dicom_encode import presized


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` keeps writers that choose a format by extension (nibabel's ``.nii.gz``) happy.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_dataset(dataset: pydicom.Dataset, path: str | os.PathLike[str]) -> Path:
    """Save a DICOM dataset (with its file meta) atomically; return the path.

    The bytes are pydicom's; large sequences of plain items are encoded in one pass first.
    """
    dataset = presized(dataset)
    with atomic_path(path, ".dcm") as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return Path(path)
