"""Label maps handed over by users: read onto their image and checked to be label maps.

A label map holds 0 (background) and whole label values from 1 to 65535, names at most 255
structures, and labels something. An image passed as a label map (a CT: negative Hounsfield
units, thousands of distinct values), a map of fractions, or an empty one is refused with the
reason, before any training or scoring allocates memory by its values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lrc.io import UnsupportedInput, read_volume
from lrc.io.geometry import align_to, orientation_onto
from lrc.io.labels import MAX_STRUCTURES, MAX_VALUE
from lrc.io.nifti import inspect_nifti, is_nifti_path, nifti_grid
from lrc.io.seg import is_seg_file, read_seg
from lrc.io.volume import Volume, VolumeInfo


def read_label(path: Path, image: Volume) -> Volume:
    """A label map for ``image`` from NIfTI or DICOM SEG, on the image's grid, checked (:func:`check_label_map`).

    Raises:
        LabelGeometryMismatch: the map does not lie on the image's grid.
        UnsupportedInput: the map is no label map (see :func:`check_label_map`).
    """
    if is_seg_file(path):
        return check_label_map(read_seg(path, image).label_map(), path.name)
    return check_label_map(align_to(read_volume(path), image), path.name)


def inspect_label(path: Path, image: VolumeInfo) -> None:
    """Check a label map for ``image`` as :func:`read_label` does, without holding a NIfTI map's voxels.

    A NIfTI map's grid is checked against the image's from its header (:func:`~lrc.io.geometry.orientation_onto`),
    then its values are streamed in slabs (:func:`~lrc.io.nifti.inspect_nifti`) into :class:`LabelValues`. A DICOM
    SEG is read onto the image's grid as :func:`read_label` reads it (one float32 mask per segment), and any
    other file whole.

    Raises:
        ImageIOError: what :func:`read_label` raises for the file, with the same message; a NIfTI map off the
            image's grid is refused before its voxels are read.
    """
    if is_seg_file(path):
        check_label_map(read_seg(path, image).label_map(), path.name)
    elif not is_nifti_path(path):
        check_label_map(align_to(read_volume(path), image), path.name)
    else:
        shape, affine = nifti_grid(path)
        orientation_onto(shape, affine, image.shape, image.affine)
        values = LabelValues()
        inspect_nifti(path, each_slab=values.add)
        values.check(path.name)


def check_label_map(label: Volume, name: str) -> Volume:
    """``label`` with its values as ``uint8`` (or ``uint16`` above 255), once they are a label map's.

    Raises:
        UnsupportedInput: values that are not whole numbers, negative or above 65535, more than 255
            distinct structures, or nothing but background; the message says which and how many.
    """
    values = label.array
    if values.dtype == bool:
        return label.with_array(values.astype(np.uint8))
    found = LabelValues()
    found.add(values)
    high = found.check(name)
    array = values.astype(np.uint8 if high <= 255 else np.uint16, copy=False)
    return label if array is values else label.with_array(array)


class LabelValues:
    """The values of a label map gathered part by part (slabs read one at a time), and the check of
    :func:`check_label_map` on the whole: the same verdict and message as on the map in one array.

    Besides the range it keeps which of the values 0 to 65535 occur (64 kB), so that the distinct
    structures are counted over the whole map.
    """

    def __init__(self) -> None:
        self.dtype: np.dtype[Any] | None = None
        self.low: Any = None  # numpy scalars of the map's dtype, as the messages print them
        self.high: Any = None
        self.nonfinite = False
        self.fractional = False
        self.present = np.zeros(MAX_VALUE + 1, dtype=bool)

    def add(self, part: np.ndarray) -> None:
        """Take the values of ``part`` (one dtype for every part of a map) into the tally; never raises."""
        self.dtype = part.dtype
        if part.size == 0 or not _numeric(part.dtype):
            return
        low, high = part.min(), part.max()
        if part.dtype.kind == "f":
            if not (np.isfinite(low) and np.isfinite(high)):
                self.nonfinite = True
                return
            self.fractional = self.fractional or not np.array_equal(part, np.round(part))
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)
        if low >= 0 and high <= MAX_VALUE and not self.fractional:  # else refused whatever the count
            self.present |= np.bincount(part.astype(np.uint16, copy=False).ravel(), minlength=MAX_VALUE + 1) > 0

    def check(self, name: str) -> int:
        """The largest value, once the values added so far are a label map's (see :func:`check_label_map`).

        Raises:
            UnsupportedInput: what :func:`check_label_map` raises for the map, with the same message.
        """
        if self.dtype == bool:
            return 1
        if self.dtype is None or not _numeric(self.dtype):
            raise UnsupportedInput(f"{name}: a label map holds whole numbers, this one holds {self.dtype} values")
        if self.nonfinite:
            raise UnsupportedInput(f"{name}: a label map holds whole numbers, this one has NaN or infinite values")
        if self.fractional:
            raise UnsupportedInput(f"{name}: a label map holds whole numbers, this one has fractional values")
        low, high = self.low, self.high
        if low < 0:
            raise UnsupportedInput(
                f"{name}: a label map holds 0 (background) and label values from 1; this one goes down to {low:g} "
                "(is it the image rather than its labels?)"
            )
        if high > MAX_VALUE:
            raise UnsupportedInput(f"{name}: label values go up to {MAX_VALUE}; this map holds {high:.0f}")
        if high == 0:
            raise UnsupportedInput(f"{name}: the label map labels nothing (every voxel is 0, the background)")
        structures = int(np.count_nonzero(self.present[1:]))
        if structures > MAX_STRUCTURES:
            raise UnsupportedInput(
                f"{name}: {structures} distinct label values, more than the {MAX_STRUCTURES} structures a label map "
                "can name here (is it the image rather than its labels?)"
            )
        return int(high)


def _numeric(dtype: np.dtype[Any]) -> bool:
    return bool(np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))
