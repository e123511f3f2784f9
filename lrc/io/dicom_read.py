"""Read DICOM files, folders and zip archives into :class:`~lrc.io.volume.Volume` objects.

Pipeline: collect files -> scan headers into planes -> group planes into series (by
SeriesInstanceUID; where UIDs are blank, by study, series number, description and acquisition)
-> split each series by grid geometry -> sort and check each stack -> check its grid against the
readers' shared bounds (:mod:`lrc.io.checks`) -> decode pixels -> apply rescale slope/intercept.
:func:`inspect_dicom` decodes only to check, one plane at a time; :func:`read_dicom_headers` stops
before the pixels.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from lrc.io.archive import ArchiveLimits, collect_files
from lrc.io.checks import check_grid
from lrc.io.dicom_pixels import check_planes, read_planes
from lrc.io.dicom_scan import Plane, Skipped, scan_file
from lrc.io.dicom_stack import Stack, assemble
from lrc.io.errors import ImageIOError, InvalidDicom, NoImageData, UnsupportedInput
from lrc.io.geometry import affine_from_dicom
from lrc.io.volume import COPIED_ATTRIBUTES, MAX_VOXELS, DicomSource, Volume, VolumeInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadOptions:
    """How to read DICOM input.

    Args:
        correct_tilt: resample gantry-tilted stacks onto an orthogonal grid instead of refusing.
        workers: processes for decoding compressed pixel data (``None``: all CPUs).
        limits: zip archive limits.
        extract_dir: where zip archives are unpacked; a temporary folder when ``None``.
        max_voxels: largest image decoded (rows x columns x planes; NIfTI files too). Compressed
            pixel data inflates without bound: 168 bytes of JPEG 2000 hold a 4096x4096 slice.
    """

    correct_tilt: bool = False
    workers: int | None = None
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    extract_dir: Path | None = None
    max_voxels: int = MAX_VOXELS


V = TypeVar("V", Volume, VolumeInfo)


@dataclass
class SeriesResult(Generic[V]):
    """What reading produced: volumes (:class:`Volume`, or :class:`VolumeInfo` from :func:`inspect_dicom`),
    and series that failed or files that were skipped."""

    volumes: list[V] = field(default_factory=list)
    errors: list[ImageIOError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_dicom(paths: Iterable[str | os.PathLike[str]], options: ReadOptions | None = None) -> SeriesResult[Volume]:
    """Read every image series found in files, folders and zip archives.

    A series that cannot be assembled is reported in ``errors`` without stopping the others.

    Raises:
        UnsupportedInput: nothing was found.
        InvalidDicom: no file is readable DICOM.
        NoImageData: DICOM was found, but no image with pixel data and patient geometry.
        UnsafeArchive: a zip archive was refused.
    """
    options = options or ReadOptions()
    paths = list(paths)
    if options.extract_dir is None and any(Path(p).is_file() for p in paths):
        with tempfile.TemporaryDirectory(prefix="lrc-unzip-") as tmp:
            # Pixel data is read before the folder goes away.
            return _read(paths, options, Path(tmp), _build, None)
    return _read(paths, options, options.extract_dir, _build, None)


def inspect_dicom(paths: Iterable[str | os.PathLike[str]], options: ReadOptions) -> SeriesResult[VolumeInfo]:
    """Check every image series as :func:`read_dicom` does, holding at most one decoded plane at a time.

    Each series passes or fails as it would in :func:`read_dicom`, with the same message, and its
    :class:`VolumeInfo` is the grid, modality, source and warnings reading it would give. Headers are
    read without pixel data; uncompressed pixel data is checked by its length, compressed planes are
    decoded one at a time and let go (:func:`lrc.io.dicom_pixels.check_planes`). The sources' headers keep
    only the attributes a derived object copies (:data:`~lrc.io.volume.COPIED_ATTRIBUTES`: patient and study).
    ``options.extract_dir`` must be given: the sources' files stay there.

    Raises:
        ImageIOError: what :func:`read_dicom` raises.
    """
    return _read(list(paths), options, options.extract_dir, _describe, COPIED_ATTRIBUTES)


def read_dicom_headers(paths: Iterable[str | os.PathLike[str]], options: ReadOptions) -> SeriesResult[VolumeInfo]:
    """Every image series' grid, modality, source and warnings from the headers alone, pixel data left unread.

    What a writer that references a series (DICOM SEG, RTSTRUCT) needs of it, for a series that
    :func:`read_dicom` or :func:`inspect_dicom` read before: each :class:`VolumeInfo` is the one
    :func:`inspect_dicom` gives, but its pixel data are neither decoded nor checked (uncompressed data
    is still checked by its length, as every header scan does), and its source keeps whole headers
    (without pixel data), the headers :func:`read_dicom`'s volumes carry. ``options.extract_dir`` must be
    given: the sources' files stay there.

    Raises:
        ImageIOError: what :func:`read_dicom` raises for a series' files or headers.
    """
    return _read(list(paths), options, options.extract_dir, _header_info, None)


def describe(volume: Volume | VolumeInfo) -> str:
    """Short human description of a series: modality, description, shape."""
    text = volume.source.series_description if volume.source else ""
    shape = "x".join(str(s) for s in volume.shape)
    return f"{volume.modality} {text!r} {shape}".replace(" ''", "")


def _read(
    paths: Sequence[str | os.PathLike[str]],
    options: ReadOptions,
    extract_dir: Path | None,
    build: Callable[[list[Plane], ReadOptions], V],
    keep: Sequence[str] | None,
) -> SeriesResult[V]:
    collected = collect_files(paths, extract_dir, options.limits)
    result: SeriesResult[V] = SeriesResult(notes=list(collected.notes))
    planes: list[Plane] = []
    skipped: list[Skipped] = []
    for path in collected.files:
        scanned = scan_file(path, keep)
        if isinstance(scanned, Skipped):
            skipped.append(scanned)
        else:
            planes.extend(scanned)
    result.notes.extend(f"{s.path.name}: {s.reason}" for s in skipped)
    if not planes:
        reasons = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:5])
        if skipped and all(s.invalid for s in skipped):
            raise InvalidDicom(f"no readable DICOM image: {reasons}")
        raise NoImageData(f"no DICOM image with pixel data and patient geometry found: {reasons}")
    for series_planes in _group_series(planes).values():
        stacks = _split_geometry(series_planes)
        for stack_planes in stacks:
            try:
                volume: V = build(stack_planes, options)
            except ImageIOError as exc:
                result.errors.append(exc)
                continue
            if len(stacks) > 1:
                split = (
                    f"series holds {len(stacks)} image geometries (sizes/orientations); "
                    "this is one of the stacks it was split into"
                )
                volume = replace(volume, warnings=(*volume.warnings, split))
            result.volumes.append(volume)
    return result


def _group_series(planes: list[Plane]) -> dict[tuple[object, ...], list[Plane]]:
    groups: dict[tuple[object, ...], list[Plane]] = defaultdict(list)
    for plane in planes:
        if plane.series_instance_uid:
            key: tuple[object, ...] = ("uid", plane.series_instance_uid)
        else:
            key = (
                "nouid",
                plane.study_instance_uid,
                plane.series_number,
                plane.series_description,
                plane.modality,
                plane.acquisition_number,
                plane.frame_of_reference_uid,
            )
        groups[key].append(plane)
    return groups


def _split_geometry(planes: list[Plane]) -> list[list[Plane]]:
    """Split a series into stacks of one size, orientation and pixel spacing (largest first)."""
    stacks: dict[tuple[object, ...], list[Plane]] = defaultdict(list)
    for plane in planes:
        stacks[plane.geometry_key].append(plane)
    return sorted(stacks.values(), key=len, reverse=True)


def _build(planes: list[Plane], options: ReadOptions) -> Volume:
    stack, affine = _grid(planes, options)
    values = read_planes(stack.planes, options.workers)  # Z x rows x columns
    # A view, no copy: X x Y x Z in Fortran order, the layout NIfTI stores.
    array = values.transpose(2, 1, 0)
    source, warnings = _source_and_warnings(stack)
    if stack.tilt_shift is not None:
        array = _untilt(array, stack.tilt_shift)
    log.debug("read series of %d planes, shape %s", len(stack.planes), array.shape)
    return Volume(array=array, affine=affine, modality=stack.planes[0].modality, source=source, warnings=warnings)


def _describe(planes: list[Plane], options: ReadOptions) -> VolumeInfo:
    """:func:`_build`'s checks and description of the volume, without its array."""
    return _header_info(planes, options, check_pixels=True)


def _header_info(planes: list[Plane], options: ReadOptions, check_pixels: bool = False) -> VolumeInfo:
    """:func:`_build`'s description of the volume from its headers; its pixels decoded only to check them."""
    stack, affine = _grid(planes, options)
    if check_pixels:
        check_planes(stack.planes, options.workers)
    source, warnings = _source_and_warnings(stack)
    first = stack.planes[0]
    shape = (first.columns, first.rows, len(stack.planes))  # a tilt-corrected volume keeps the grid's shape
    return VolumeInfo(shape=shape, affine=affine, modality=first.modality, source=source, warnings=warnings)


def _grid(planes: list[Plane], options: ReadOptions) -> tuple[Stack, np.ndarray]:
    """The sorted stack and its affine, checked (voxel limit before decoding, the shared grid bounds)."""
    stack = assemble(planes, correct_tilt=options.correct_tilt)
    first = stack.planes[0]
    voxels = len(stack.planes) * first.rows * first.columns
    if voxels > options.max_voxels:  # checked before decoding allocates it
        raise UnsupportedInput(
            f"series of {len(stack.planes)} planes of {first.rows}x{first.columns}: {voxels} voxels, over the "
            f"reader's limit of {options.max_voxels}"
        )
    affine = affine_from_dicom(
        np.asarray(first.orientation[:3]),
        np.asarray(first.orientation[3:]),
        first.pixel_spacing,
        np.asarray(first.position),
        stack.step,
    )
    check_grid((first.columns, first.rows, len(stack.planes)), affine, f"series of {len(stack.planes)} plane(s)")
    return stack, affine


def _source_and_warnings(stack: Stack) -> tuple[DicomSource | None, tuple[str, ...]]:
    """What a volume of ``stack`` references (none once tilt-corrected) and what its user should know."""
    warnings = list(stack.notes)
    source: DicomSource | None = _source(stack)
    if stack.tilt_shift is not None:
        source = None
        warnings.append(
            "tilt-corrected volume: it no longer matches the source slices, so no DICOM SEG can reference them"
        )
    elif not stack.planes[0].series_instance_uid:
        warnings.append(
            "the files carry no Series/Study/SOP Instance UIDs: series identified by geometry; "
            "a DICOM SEG cannot reference them until UIDs are assigned"
        )
    return source, tuple(warnings)


def _untilt(array: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Shift slice k by ``k * shift`` voxels in-plane, giving the orthogonal grid of the stack."""
    from scipy import ndimage  # here only: importing it costs ~0.3 s of every read, and few series are tilted

    out = np.empty(array.shape, dtype=np.float32)
    fill = float(array.min())
    for k in range(array.shape[2]):
        out[:, :, k] = ndimage.shift(array[:, :, k].astype(np.float32), k * shift, order=1, cval=fill)
    return out.astype(array.dtype) if np.issubdtype(array.dtype, np.floating) else np.round(out).astype(array.dtype)


def _source(stack: Stack) -> DicomSource:
    first = stack.planes[0]
    return DicomSource(
        study_instance_uid=first.study_instance_uid,
        series_instance_uid=first.series_instance_uid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        sop_class_uid=first.sop_class_uid,
        sop_instance_uids=tuple(p.sop_instance_uid for p in stack.planes),
        files=tuple(p.path for p in stack.planes),
        frames=tuple(p.frame for p in stack.planes),
        attributes={k: first.header.get(k) for k in COPIED_ATTRIBUTES if first.header.get(k) not in (None, "")},
        series_description=first.series_description,
        series_number=first.series_number,
        headers=tuple({id(p.header): p.header for p in stack.planes}.values()),
    )


__all__ = ["ReadOptions", "SeriesResult", "describe", "inspect_dicom", "read_dicom", "read_dicom_headers"]
