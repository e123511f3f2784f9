"""Grid arithmetic: the DICOM affine formula and label alignment."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from lrc.io import LabelGeometryMismatch, Volume
from lrc.io.geometry import affine_from_dicom, align_to, axis_codes, same_grid

# (row cosine, column cosine, pixel spacing (row, column), first position, step, expected axis codes)
CASES = [
    ((1, 0, 0), (0, 1, 0), (0.5, 0.7), (10, 20, 30), (0, 0, 2), "LPS"),
    ((0, 1, 0), (0, 0, -1), (1.0, 1.0), (0, 0, 0), (1.5, 0, 0), "PIL"),
    ((1, 0, 0), (0, 0, -1), (0.8, 0.8), (0, 0, 0), (0, -3, 0), "LIA"),
]


@pytest.mark.parametrize(("row", "column", "spacing", "first", "step", "codes"), CASES)
def test_affine_from_dicom(row, column, spacing, first, step, codes):
    affine = affine_from_dicom(np.array(row), np.array(column), spacing, np.array(first), np.array(step))
    assert axis_codes(affine) == codes
    # Voxel (i, j, k): P = S + X * dc * i + Y * dr * j + step * k, in LPS; RAS flips x and y.
    i, j, k = 3, 5, 2
    lps = np.array(first) + np.array(row) * spacing[1] * i + np.array(column) * spacing[0] * j + np.array(step) * k
    assert_allclose((affine @ [i, j, k, 1])[:3], lps * [-1, -1, 1])


def test_align_permuted_axes():
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    reference = Volume(array, np.diag([1.0, 2.0, 3.0, 1.0]))
    permuted = Volume(
        array.transpose(2, 0, 1).copy(), np.array([[0, 1, 0, 0], [0, 0, 2, 0], [3, 0, 0, 0], [0, 0, 0, 1.0]])
    )
    assert_array_equal(align_to(permuted, reference).array, array)
    assert same_grid(reference.affine, reference.shape, reference.affine, reference.shape)


@pytest.mark.parametrize("order", ["C", "F"])
def test_align_keeps_the_layout_on_the_same_grid_and_copies_reoriented_views(order: str):
    array = np.asarray(np.arange(60, dtype=np.uint8).reshape(3, 4, 5), order=order)
    reference = Volume(np.zeros((3, 4, 5)), np.diag([1.0, 2.0, 3.0, 1.0]))
    same = align_to(Volume(array, reference.affine), reference).array
    assert np.shares_memory(same, array)  # no copy: the predictor's Fortran-ordered map is 78 MB at 512x512x300
    assert same.flags.c_contiguous == (order == "C")
    assert same.flags.f_contiguous == (order == "F")
    flipped = reference.affine @ np.array([[-1.0, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    back = align_to(Volume(array[::-1].copy(order=order), flipped), reference).array
    assert_array_equal(back, array)
    assert back.flags.c_contiguous
    assert all(stride > 0 for stride in back.strides)


def test_align_refuses_other_spacing():
    reference = Volume(np.zeros((4, 4, 4)), np.eye(4))
    with pytest.raises(LabelGeometryMismatch, match="mm apart"):
        align_to(Volume(np.zeros((4, 4, 4)), np.diag([1.0, 1.0, 1.5, 1.0])), reference)
