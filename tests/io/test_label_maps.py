"""Label maps checked before they are used: whole values 0..65535, at most 255 structures, something labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lrc.io import UnsupportedInput, Volume, read_nifti, write_nifti
from lrc.io.label_maps import check_label_map, read_label

AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def volume(array: np.ndarray) -> Volume:
    return Volume(array, AFFINE)


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.full((4, 4, 2), -1, dtype=np.int16), "goes down to -1"),
        (np.full((4, 4, 2), 0.5, dtype=np.float32), "fractional values"),
        (np.full((4, 4, 2), np.nan, dtype=np.float32), "NaN or infinite"),
        (np.full((4, 4, 2), 2**40, dtype=np.int64), "this map holds 1099511627776"),
        (np.arange(1, 301, dtype=np.int16).reshape(10, 15, 2), "300 distinct label values"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "labels nothing"),
        (np.full((4, 4, 2), 1 + 2j, dtype=np.complex64), "complex64"),
    ],
)
def test_what_is_no_label_map_is_refused(array: np.ndarray, needle: str):
    with pytest.raises(UnsupportedInput, match=needle) as raised:
        check_label_map(volume(array), "labels.nii.gz")
    assert "labels.nii.gz" in str(raised.value)


def test_the_ct_itself_is_refused_as_its_label_map(shared_data: Path):
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    image = read_nifti(folder / "example_ct_sm.nii.gz")
    with pytest.raises(UnsupportedInput, match="is it the image rather than its labels"):
        read_label(folder / "example_ct_sm.nii.gz", image)
    mr = read_nifti(shared_data / "nifti" / "totalseg_mr_abdomen" / "example_mr_sm.nii.gz")
    with pytest.raises(UnsupportedInput, match="is it the image"):  # an MR: its negative values, or too many
        check_label_map(mr, "mr.nii.gz")


def test_label_maps_come_back_in_the_smallest_unsigned_type(shared_data: Path, tmp_path: Path):
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    image = read_nifti(folder / "example_ct_sm.nii.gz")
    label = read_label(folder / "example_seg.nii.gz", image)
    assert label.array.dtype == np.uint8
    assert np.array_equal(label.array, read_nifti(folder / "example_seg.nii.gz").array)
    wide = np.zeros(image.shape, dtype=np.float64)
    wide[0, 0, 0], wide[1, 1, 1] = 1000.0, 3.0  # whole numbers stored as floats, one above 255
    path = write_nifti(Volume(wide, image.affine), tmp_path / "wide.nii.gz")
    checked = read_label(path, image)
    assert checked.array.dtype == np.uint16
    assert sorted(np.unique(checked.array)) == [0, 3, 1000]
    assert check_label_map(volume(np.ones((2, 2, 2), dtype=bool)), "m").array.dtype == np.uint8
