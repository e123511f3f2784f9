"""Decode the pixels of sorted planes into one array of modality values (HU for CT), or check that
they decode without making the array (:func:`check_planes`, what the API checks uploads with).

Uncompressed little-endian planes are read straight from their file offset into the output
array (no pydicom decode, no temporary copy), then masked and rescaled in place while the plane
is still in cache; threads overlap this work because NumPy and file reads release the GIL.
Compressed planes (JPEG 2000, JPEG lossless/baseline, RLE) are decoded by pydicom in a pool of
worker processes kept for the life of the process (started once, reused by every read): the
decoders hold the GIL, so threads do not help. JPEG 2000 goes through GDCM, 1.4x faster here than
pylibjpeg-openjpeg (bench/READ_SERIES.md); other syntaxes through pylibjpeg. Inside a daemonic
process (a Celery prefork child) processes cannot be started and decoding stays in the calling
process.

MONOCHROME1 planes (the lowest value displayed white) are inverted after the rescale, as PS3.3
C.7.6.3.1.2 orders the steps: ``value -> low + high - value`` over the rescaled range of the stored
bits, so that larger values mean brighter, as in MONOCHROME2, and the range is kept. CT planes are
not inverted: their rescaled values are Hounsfield units (C.11.1), which the photometric
interpretation does not change (it inverts the display, after the VOI), and models window them in HU.

The output type follows from the headers alone: ``int16`` when slope is 1, the intercept is an
integer and every possible stored value fits after rescaling (the usual CT), ``int32`` when a
wider integer is needed, else ``float32``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

import numpy as np
import pydicom

from lrc.io.checks import MAX_ABS_VALUE
from lrc.io.dicom_scan import Plane
from lrc.io.errors import InvalidDicom

log = logging.getLogger(__name__)

# Decoding compressed slices costs ~20 ms each; below this many, starting processes costs more.
MIN_PLANES_FOR_PROCESSES = 24
# A compressed plane larger than this (a 64 MiB int32 buffer in the decoder) is checked in a decoder process.
LARGE_PLANE_PIXELS = 1 << 24
JPEG2000_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}


def output_dtype(planes: Sequence[Plane]) -> np.dtype:
    """The dtype that holds every rescaled value these headers allow, exactly.

    Raises:
        InvalidDicom: a rescale slope or intercept that is not finite, or values beyond
            :data:`~lrc.io.checks.MAX_ABS_VALUE`.
    """
    for plane in planes:
        low, high = _rescaled_range(plane)
        if not (math.isfinite(plane.slope) and math.isfinite(plane.intercept)) or max(-low, high) > MAX_ABS_VALUE:
            raise InvalidDicom(
                f"{plane.path.name}: rescale slope {plane.slope} and intercept {plane.intercept} "
                f"give values no image holds ({low:g} to {high:g})"
            )
    if any(p.slope != 1 or p.intercept != round(p.intercept) for p in planes):
        return np.dtype(np.float32)
    low = min(_rescaled_range(p)[0] for p in planes)
    high = max(_rescaled_range(p)[1] for p in planes)
    if low >= -(2**15) and high < 2**15:
        return np.dtype(np.int16)
    return np.dtype(np.int32 if low >= -(2**31) and high < 2**31 else np.float32)


def _rescaled_range(plane: Plane) -> tuple[float, float]:
    ends = [v * plane.slope + plane.intercept for v in _stored_range(plane)]
    return min(ends), max(ends)


def _stored_range(plane: Plane) -> tuple[int, int]:
    bits = plane.bits_stored
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if plane.signed else (0, 2**bits - 1)


def read_planes(planes: Sequence[Plane], workers: int | None = None) -> np.ndarray:
    """Rescaled values of ``planes`` as one array, shape ``(Z, rows, columns)``.

    Args:
        planes: planes of one grid, in slice order.
        workers: processes for compressed data; ``None`` = CPU count, ``1`` = serial.

    Raises:
        InvalidDicom: a plane cannot be decoded (corrupt or truncated data, unsupported syntax).
    """
    first = planes[0]
    out = np.empty((len(planes), first.rows, first.columns), dtype=output_dtype(planes))  # Z x rows x columns
    native = [k for k, p in enumerate(planes) if p.pixel_offset is not None]
    coded = [k for k, p in enumerate(planes) if p.pixel_offset is None]
    if native:
        with ThreadPoolExecutor(max_workers=min(4, len(native))) as pool:
            list(pool.map(lambda k: _read_native(planes[k], out[k]), native))
    if coded:
        tasks = [(str(planes[k].path), planes[k].frame, _plugin(planes[k].transfer_syntax)) for k in coded]
        for k, stored in zip(coded, _map(_decode_one, tasks, workers), strict=True):
            _check_decoded(planes[k], stored.shape)
            _rescale_into(stored, planes[k], out[k])
    for k, plane in enumerate(planes):
        if _photometric(plane) == "MONOCHROME1" and not _hounsfield(plane):
            _invert(plane, out[k])
    return out


def check_planes(planes: Sequence[Plane], workers: int | None = None) -> None:
    """Check what :func:`read_planes` checks, without the array it fills: the rescale of each header (the
    output dtype's), and that each compressed plane decodes to its header's size.

    Compressed planes are decoded one at a time and let go (only their shape is kept); many planes, or
    planes over :data:`LARGE_PLANE_PIXELS`, are decoded in the decoder processes (large ones never in this
    process, unless it is daemonic and cannot start any). Uncompressed planes are not read: the scan
    (:func:`lrc.io.dicom_scan.scan_file`) found all their bytes in the file.

    Raises:
        InvalidDicom: what :func:`read_planes` raises.
    """
    output_dtype(planes)
    coded = [p for p in planes if p.pixel_offset is None]
    tasks = [(str(p.path), p.frame, _plugin(p.transfer_syntax)) for p in coded]
    large = any(p.rows * p.columns > LARGE_PLANE_PIXELS for p in coded)
    for plane, shape in zip(coded, _map(_decoded_shape, tasks, workers, isolate=large), strict=True):
        _check_decoded(plane, shape)


def _check_decoded(plane: Plane, shape: tuple[int, ...]) -> None:
    if shape != (plane.rows, plane.columns):
        raise InvalidDicom(f"{plane.path.name}: decoded {shape} pixels, header says {(plane.rows, plane.columns)}")


def _photometric(plane: Plane) -> str:
    return str(plane.header.get("PhotometricInterpretation", "")).strip().upper()


def _hounsfield(plane: Plane) -> bool:
    return plane.modality == "CT" or str(plane.header.get("RescaleType", "")).strip().upper() == "HU"


def _invert(plane: Plane, out: np.ndarray) -> None:
    """MONOCHROME1 to MONOCHROME2 in modality values: reflect ``out`` within the plane's rescaled range."""
    low, high = _rescaled_range(plane)
    if out.dtype.kind == "f":
        np.subtract(np.float32(low + high), out, out=out)
    else:
        # low + high - value stays inside [low, high], which the output type holds (output_dtype);
        # low + high itself may not (e.g. 14 stored bits, intercept 16000, int16), hence int64.
        out[...] = np.int64(round(low + high)) - out.astype(np.int64)


def _stored_dtype(plane: Plane) -> np.dtype:
    kind = "i" if plane.signed else "u"
    return np.dtype(f"<{kind}{max(plane.bits_allocated, 8) // 8}")


def _read_native(plane: Plane, out: np.ndarray) -> None:
    """Read one uncompressed plane into ``out`` (rows x columns), rescaled."""
    dtype = _stored_dtype(plane)
    assert plane.pixel_offset is not None
    direct = out.dtype.itemsize == dtype.itemsize and out.dtype.kind in "iu"
    # Stored bits land in the output's memory when sizes match; masking and sign extension below
    # make them valid values of the output type (the output type holds every stored value).
    buffer = out.view(dtype) if direct else np.empty(out.shape, dtype=dtype)
    with open(plane.path, "rb") as handle:
        handle.seek(plane.pixel_offset)
        read = handle.readinto(buffer.data.cast("B"))
    if read != buffer.nbytes:
        raise InvalidDicom(f"{plane.path.name}: pixel data truncated ({read} of {buffer.nbytes} bytes)")
    unused = plane.bits_allocated - plane.bits_stored
    if 0 < unused < plane.bits_allocated:
        # Bits above BitsStored may hold overlays or garbage: drop them, keep the sign.
        if plane.signed:
            np.left_shift(buffer, unused, out=buffer)
            np.right_shift(buffer, unused, out=buffer)
        else:
            np.bitwise_and(buffer, (1 << plane.bits_stored) - 1, out=buffer)
    if direct:
        if plane.intercept:
            np.add(out, out.dtype.type(plane.intercept), out=out)
    else:
        _rescale_into(buffer, plane, out)


def _rescale_into(stored: np.ndarray, plane: Plane, out: np.ndarray) -> None:
    """``out = stored * slope + intercept`` in the output's type."""
    if out.dtype.kind == "f":
        np.multiply(stored, np.float32(plane.slope), out=out, casting="unsafe")
        np.add(out, np.float32(plane.intercept), out=out)
    else:
        out[...] = stored
        if plane.intercept:
            np.add(out, out.dtype.type(plane.intercept), out=out)


Task = tuple[str, int | None, str]  # path, 1-based frame or None, pydicom decoding plugin ("" = default)
T = TypeVar("T")
_pool: tuple[int, ProcessPoolExecutor] | None = None


def _plugin(transfer_syntax: str) -> str:
    if transfer_syntax in JPEG2000_SYNTAXES and _has_gdcm():
        return "gdcm"
    return ""


@functools.cache
def _has_gdcm() -> bool:
    return importlib.util.find_spec("gdcm") is not None


def _decoder_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of this process, created on first use and kept for later reads."""
    global _pool
    if _pool is None or _pool[0] != workers:
        if _pool is not None:
            _pool[1].shutdown(wait=False, cancel_futures=True)
        _pool = (
            workers,
            ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")),
        )
    return _pool[1]


def _map(function: Callable[[Task], T], tasks: list[Task], workers: int | None, isolate: bool = False) -> list[T]:
    """``function`` over ``tasks``: in the decoder processes when there are many, else here.

    ``isolate``: in the decoder processes however few (planes too large to decode here), and refused
    rather than decoded here when a decoder process dies (out of memory, likely).
    """
    global _pool
    workers = workers or os.cpu_count() or 1
    many = workers > 1 and len(tasks) >= MIN_PLANES_FOR_PROCESSES
    if (many or isolate) and tasks and not multiprocessing.current_process().daemon:
        chunk = max(1, len(tasks) // (workers * 4))
        try:
            return list(_decoder_pool(workers).map(function, tasks, chunksize=chunk))
        except BrokenProcessPool as exc:
            _pool = None
            if isolate:
                raise InvalidDicom(
                    f"a decoder process died decoding planes of more than {LARGE_PLANE_PIXELS} pixels "
                    "(out of memory?); they are not decoded in this process"
                ) from exc
            # A child died or could not start (e.g. a __main__ read from stdin cannot be re-imported).
            log.warning("decoder processes failed; decoding %d planes in this process", len(tasks))
    return [function(task) for task in tasks]


def _decoded_shape(task: Task) -> tuple[int, ...]:
    """The shape of one decoded plane (runs in a worker process); the pixels are let go."""
    return tuple(_decode_one(task).shape)


def _decode_one(task: Task) -> np.ndarray:
    """Decode one plane's stored values with pydicom (runs in a worker process)."""
    path, frame, plugin = task
    try:
        index = None if frame is None else frame - 1
        return np.asarray(pydicom.pixels.pixel_array(path, index=index, decoding_plugin=plugin))
    except Exception as exc:  # decoders raise many types on corrupt data
        name = Path(path).name
        raise InvalidDicom(f"{name}: pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc
