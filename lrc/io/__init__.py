"""One way to read and write medical images.

Read anything a user hands over with :func:`read_images` (many series) or :func:`read_volume`
(exactly one); a DICOM series read before, for a writer that references it, with
:func:`read_dicom_info` (headers only). Writers live in their modules: :mod:`lrc.io.nifti`,
:mod:`lrc.io.seg` (DICOM SEG), :mod:`lrc.io.rtstruct`, registered by name in :mod:`lrc.writers` for
the service and the command line; grids in :mod:`lrc.io.geometry` and :mod:`lrc.io.resample`. The
conventions (array order, RAS affine) are in :mod:`lrc.io.volume`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from lrc.io.archive import ArchiveLimits, collect_files
from lrc.io.dicom_read import ReadOptions, SeriesResult, describe, read_dicom, read_dicom_headers
from lrc.io.errors import (
    GeometryError,
    ImageIOError,
    InvalidDicom,
    InvalidVoxels,
    LabelGeometryMismatch,
    MultipleSeries,
    NoImageData,
    SegmentationFormatError,
    UnsafeArchive,
    UnsupportedInput,
)
from lrc.io.nifti import is_nifti_path, read_nifti, write_nifti
from lrc.io.volume import DicomSource, Volume, VolumeInfo

__all__ = [
    "ArchiveLimits",
    "DicomSource",
    "GeometryError",
    "ImageIOError",
    "InvalidDicom",
    "InvalidVoxels",
    "LabelGeometryMismatch",
    "MultipleSeries",
    "NoImageData",
    "ReadOptions",
    "SegmentationFormatError",
    "SeriesResult",
    "UnsafeArchive",
    "UnsupportedInput",
    "Volume",
    "VolumeInfo",
    "read_dicom_info",
    "read_images",
    "read_nifti",
    "read_volume",
    "write_nifti",
]

V = TypeVar("V", Volume, VolumeInfo)


def read_images(paths: Iterable[str | os.PathLike[str]], options: ReadOptions | None = None) -> SeriesResult[Volume]:
    """Read every image in DICOM files, folders, zip archives and NIfTI files.

    NIfTI files are recognised by name (``.nii``, ``.nii.gz``), everything else is tried as DICOM.
    See :func:`lrc.io.dicom_read.read_dicom` for what is raised and what is reported.
    """
    options = options or ReadOptions()
    with tempfile.TemporaryDirectory(prefix="lrc-read-") as tmp:
        extract_dir = options.extract_dir or Path(tmp)
        collected = collect_files(paths, extract_dir, options.limits)
        nifti = [f for f in collected.files if is_nifti_path(f)]
        dicom = [f for f in collected.files if not is_nifti_path(f)]
        result: SeriesResult[Volume] = SeriesResult(notes=list(collected.notes))
        for path in nifti:
            try:
                result.volumes.append(read_nifti(path, max_voxels=options.max_voxels))
            except ImageIOError as exc:
                result.errors.append(exc)
        if dicom:
            try:
                found = read_dicom(dicom, replace(options, extract_dir=extract_dir))
            except ImageIOError as exc:
                if not nifti:
                    raise
                result.notes.append(f"no DICOM image besides the NIfTI files ({exc})")
            else:
                result.volumes += found.volumes
                result.errors += found.errors
                result.notes += found.notes
        return result


def read_volume(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    options: ReadOptions | None = None,
    series: int | str | None = None,
) -> Volume:
    """Read one image (DICOM series or NIfTI file): the only one, or the one ``series`` picks.

    Args:
        paths: files, folders, zips.
        options: reader options.
        series: the index of the series in :func:`read_images`' order (what ``lrc info`` lists),
            or a SeriesInstanceUID; ``None``: the input must hold exactly one series.

    Raises:
        MultipleSeries: the input holds several series and ``series`` picks none (the message lists
            them and says how to pick one), or a UID names several stacks.
        ImageIOError: the image could not be read (see :func:`read_images`), or ``series`` names no
            series of the input.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    return _one(read_images(paths, options), series)


def read_dicom_info(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    options: ReadOptions | None = None,
    series: int | str | None = None,
) -> VolumeInfo:
    """One DICOM series' grid, modality, source and warnings from its headers, its pixel data left unread.

    For a writer that references a series read before (DICOM SEG, RTSTRUCT): the grid, source (whole
    headers, without pixel data) and warnings are those :func:`read_volume` gives the same files, and the
    series is picked as it picks it. Its pixels are neither decoded nor checked
    (:func:`lrc.io.dicom_read.read_dicom_headers`).

    Raises:
        MultipleSeries: as :func:`read_volume`.
        ImageIOError: the headers do not make a series (see :func:`lrc.io.dicom_read.read_dicom`), or
            ``series`` names no series of the input.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    options = options or ReadOptions()
    with tempfile.TemporaryDirectory(prefix="lrc-read-") as tmp:
        result = read_dicom_headers(paths, replace(options, extract_dir=options.extract_dir or Path(tmp)))
    return _one(result, series)


def _one(result: SeriesResult[V], series: int | str | None) -> V:
    """The only series of ``result``, or the one ``series`` picks, with the reading's notes as warnings."""
    if series is None:
        if len(result.volumes) + len(result.errors) > 1:
            raise MultipleSeries(
                f"the input holds {len(result.volumes) + len(result.errors)} series: {_listing(result)}; "
                "pick one by its index or SeriesInstanceUID (the command line: --series N or --series UID; "
                "lrc info lists them), or pass the files of one series"
            )
        if result.errors:
            raise result.errors[0]
        volume = result.volumes[0]
    else:
        volume = _pick(result, series)
    return replace(volume, warnings=volume.warnings + tuple(result.notes))


def _listing(result: SeriesResult[V]) -> str:
    described = [f"[{i}] {describe(v)}" for i, v in enumerate(result.volumes)]
    return "; ".join(described + [f"unreadable series ({e})" for e in result.errors])


def _pick(result: SeriesResult[V], series: int | str) -> V:
    if isinstance(series, int):
        if not 0 <= series < len(result.volumes):
            raise UnsupportedInput(
                f"no series [{series}]: the input holds {len(result.volumes)} readable series ({_listing(result)})"
            )
        return result.volumes[series]
    found = [v for v in result.volumes if v.source is not None and v.source.series_instance_uid == series]
    if not found:
        raise UnsupportedInput(f"no series with SeriesInstanceUID {series} in the input ({_listing(result)})")
    if len(found) > 1:
        raise MultipleSeries(f"SeriesInstanceUID {series} holds {len(found)} stacks: pick one by its index")
    return found[0]
