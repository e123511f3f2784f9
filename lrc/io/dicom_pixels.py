"""Decode the pixels of sorted planes into one array, in parallel where it pays.

Uncompressed little-endian planes are read straight from their file offset with NumPy (no
pydicom decode, no copy beyond the read). Compressed planes (JPEG 2000, JPEG lossless/baseline,
RLE) are decoded by pydicom's pylibjpeg plugins in worker processes: those decoders hold the GIL,
so threads do not help. Inside a daemonic process (a Celery prefork child) processes cannot be
started and decoding falls back to the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom

from lrc.io.dicom_scan import Plane
from lrc.io.errors import InvalidDicom

# Decoding compressed slices costs ~20 ms each; below this many, starting processes costs more.
MIN_PLANES_FOR_PROCESSES = 24


def decode_planes(planes: Sequence[Plane], workers: int | None = None) -> np.ndarray:
    """Stored pixel values of ``planes`` as one array, shape ``(Z, rows, columns)``.

    Args:
        planes: planes of one grid, in slice order.
        workers: processes for compressed data; ``None`` = CPU count, ``1`` = serial.

    Raises:
        InvalidDicom: a plane cannot be decoded (corrupt or truncated data, unsupported syntax).
    """
    first = planes[0]
    dtype = _stored_dtype(first)
    out = np.empty((len(planes), first.rows, first.columns), dtype=dtype)  # Z x rows x columns
    native = [i for i, p in enumerate(planes) if p.pixel_offset is not None]
    coded = [i for i, p in enumerate(planes) if p.pixel_offset is None]
    if native:
        # np.fromfile releases the GIL while reading: threads overlap the file system latency.
        with ThreadPoolExecutor(max_workers=min(8, len(native))) as pool:
            for index, plane in zip(native, pool.map(_read_native, [planes[i] for i in native]), strict=True):
                out[index] = plane
    if coded:
        tasks = [(str(planes[i].path), planes[i].frame) for i in coded]
        for index, plane in zip(coded, _map_decode(tasks, workers), strict=True):
            if plane.shape != out.shape[1:]:
                raise InvalidDicom(
                    f"{planes[index].path.name}: decoded {plane.shape} pixels, header says {out.shape[1:]}"
                )
            out[index] = plane
    return out


def _stored_dtype(plane: Plane) -> np.dtype:
    kind = "i" if plane.signed else "u"
    return np.dtype(f"{kind}{max(plane.bits_allocated, 8) // 8}")


def _read_native(plane: Plane) -> np.ndarray:
    """One uncompressed plane read at its offset, high bits masked or sign-extended."""
    dtype = _stored_dtype(plane).newbyteorder("<")
    count = plane.rows * plane.columns
    assert plane.pixel_offset is not None
    data = np.fromfile(plane.path, dtype=dtype, count=count, offset=plane.pixel_offset)
    if data.size != count:
        raise InvalidDicom(f"{plane.path.name}: pixel data truncated ({data.size} of {count} pixels)")
    unused = plane.bits_allocated - plane.bits_stored
    if 0 < unused < plane.bits_allocated:
        # Bits above BitsStored may hold overlays or garbage: drop them, keep the sign.
        data = (data << unused) >> unused if plane.signed else data & ((1 << plane.bits_stored) - 1)
    return data.reshape(plane.rows, plane.columns)


def _map_decode(tasks: list[tuple[str, int | None]], workers: int | None) -> list[np.ndarray]:
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(tasks) >= MIN_PLANES_FOR_PROCESSES and not multiprocessing.current_process().daemon:
        context = multiprocessing.get_context("forkserver")
        chunk = max(1, len(tasks) // (workers * 4))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            return list(pool.map(_decode_one, tasks, chunksize=chunk))
    return [_decode_one(task) for task in tasks]


def _decode_one(task: tuple[str, int | None]) -> np.ndarray:
    """Decode one plane with pydicom (runs in a worker process)."""
    path, frame = task
    try:
        if frame is None:
            return np.asarray(pydicom.pixels.pixel_array(path))
        return np.asarray(pydicom.pixels.pixel_array(path, index=frame - 1))
    except Exception as exc:  # decoders raise many types on corrupt data
        raise InvalidDicom(f"{Path(path).name}: pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc
