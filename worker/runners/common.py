"""Helpers shared by runners: scratch folders and reading stored series back (voxels, or headers alone)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.context import Context
from core.records.studies import series_entries
from core.records.tables import Series
from lrc.io import Volume, VolumeInfo, read_dicom_info, read_volume


@contextmanager
def scratch(ctx: Context, prefix: str) -> Iterator[Path]:
    """A temporary folder beside the blobs (removed afterwards).

    ``prefix`` names the job: folders with the same prefix were left by an earlier delivery of the
    same job whose process was killed (no ``finally`` ran there), and are removed first.
    """
    ctx.settings.work_dir.mkdir(parents=True, exist_ok=True)
    for leftover in ctx.settings.work_dir.glob(f"{prefix}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=ctx.settings.work_dir) as folder:
        yield Path(folder)


def read_series(ctx: Context, series: Series, folder: Path) -> Volume:
    """The volume of a stored series (its DICOM source files stay valid while ``folder`` exists)."""
    paths = ctx.store.materialize(series_entries(series), folder / f"series-{series.id}")
    return read_volume(paths)


def read_series_headers(ctx: Context, series: Series, folder: Path) -> VolumeInfo:
    """The grid and DICOM source of a stored DICOM series from its headers, its pixel data left undecoded.

    What the export writers need of a series the segment job read whole (their output is the same as with
    :func:`read_series`' volume).
    """
    paths = ctx.store.materialize(series_entries(series), folder / f"series-{series.id}")
    return read_dicom_info(paths)
