"""Label maps handed over by users: read onto their image and checked to be label maps.

A label map holds 0 (background) and whole label values from 1 to 65535, names at most 255
structures, and labels something. An image passed as a label map (a CT: negative Hounsfield
units, thousands of distinct values), a map of fractions, or an empty one is refused with the
reason, before any training or scoring allocates memory by its values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrc.io import UnsupportedInput, read_volume
from lrc.io.geometry import align_to
from lrc.io.labels import MAX_STRUCTURES, MAX_VALUE
from lrc.io.seg import is_seg_file, read_seg
from lrc.io.volume import Volume


def read_label(path: Path, image: Volume) -> Volume:
    """A label map for ``image`` from NIfTI or DICOM SEG, on the image's grid, checked (:func:`check_label_map`).

    Raises:
        LabelGeometryMismatch: the map does not lie on the image's grid.
        UnsupportedInput: the map is no label map (see :func:`check_label_map`).
    """
    if is_seg_file(path):
        return check_label_map(read_seg(path, image).label_map(), path.name)
    return check_label_map(align_to(read_volume(path), image), path.name)


def check_label_map(label: Volume, name: str) -> Volume:
    """``label`` with its values as ``uint8`` (or ``uint16`` above 255), once they are a label map's.

    Raises:
        UnsupportedInput: values that are not whole numbers, negative or above 65535, more than 255
            distinct structures, or nothing but background; the message says which and how many.
    """
    values = label.array
    if values.dtype == bool:
        return label.with_array(values.astype(np.uint8))
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise UnsupportedInput(f"{name}: a label map holds whole numbers, this one holds {values.dtype} values")
    low, high = values.min(), values.max()
    if np.issubdtype(values.dtype, np.floating):
        if not (np.isfinite(low) and np.isfinite(high)):
            raise UnsupportedInput(f"{name}: a label map holds whole numbers, this one has NaN or infinite values")
        if not np.array_equal(values, np.round(values)):
            raise UnsupportedInput(f"{name}: a label map holds whole numbers, this one has fractional values")
    if low < 0:
        raise UnsupportedInput(
            f"{name}: a label map holds 0 (background) and label values from 1; this one goes down to {low:g} "
            "(is it the image rather than its labels?)"
        )
    if high > MAX_VALUE:
        raise UnsupportedInput(f"{name}: label values go up to {MAX_VALUE}; this map holds {high:.0f}")
    if high == 0:
        raise UnsupportedInput(f"{name}: the label map labels nothing (every voxel is 0, the background)")
    dtype = np.uint8 if high <= 255 else np.uint16
    array = values.astype(dtype, copy=False)
    structures = int(np.count_nonzero(np.bincount(array.ravel(), minlength=int(high) + 1)[1:]))
    if structures > MAX_STRUCTURES:
        raise UnsupportedInput(
            f"{name}: {structures} distinct label values, more than the {MAX_STRUCTURES} structures a label map "
            "can name here (is it the image rather than its labels?)"
        )
    return label if array is values else label.with_array(array)
