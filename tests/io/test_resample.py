"""Resampling: grids keep their field of view, labels survive a round trip, images interpolate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from lrc.io import Volume, read_nifti
from lrc.io.resample import grid_for_spacing, resample_like, resample_to_grid, resample_to_spacing


def corner(affine: np.ndarray, spacing) -> np.ndarray:
    """World position of the outer corner of voxel (0, 0, 0)."""
    return (affine @ [-0.5, -0.5, -0.5, 1.0])[:3]


@pytest.mark.parametrize("spacing", [(1.5, 1.5, 1.5), (0.8, 2.0, 5.0)])
def test_grid_keeps_field_of_view(spacing):
    affine = np.diag([-0.7, -0.7, 2.5, 1.0])
    affine[:3, 3] = [100.0, 80.0, -300.0]
    volume = Volume(np.zeros((100, 90, 40), np.int16), affine)
    new_affine, shape = grid_for_spacing(volume, spacing)
    assert_allclose(corner(new_affine, spacing), corner(affine, volume.spacing), atol=1e-6)
    extent_old = np.asarray(volume.spacing) * volume.shape
    extent_new = np.linalg.norm(new_affine[:3, :3], axis=0) * shape
    assert_allclose(extent_new, extent_old, atol=1e-6)
    assert np.all(np.sign(np.diag(new_affine)[:3]) == np.sign(np.diag(affine)[:3]))


def test_real_labels_round_trip(shared_data: Path):
    labels = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_seg_fast_force_split.nii.gz")
    fine = resample_to_spacing(labels, (1.5, 1.5, 1.5), is_label=True)
    assert fine.shape == (244, 202, 224)
    assert set(np.unique(fine.array)) <= set(np.unique(labels.array))
    back = resample_like(fine, labels, is_label=True)
    assert (back.array == labels.array).mean() > 0.999
    liver_ml = (fine.array == 5).sum() * 1.5**3 / 1000
    assert liver_ml == pytest.approx(41692 * 27 / 1000, rel=0.05)


def test_onehot_keeps_thin_structure_nearest_can_lose():
    array = np.zeros((20, 20, 20), np.uint8)
    array[:, 10, :] = 3  # a one-voxel-thick sheet
    volume = Volume(array, np.eye(4))
    affine = np.eye(4)
    affine[1, 1] = 2.0
    affine[1, 3] = 0.5  # output voxels straddle the sheet
    onehot = resample_to_grid(volume, affine, (20, 10, 20), is_label=True)
    assert (onehot.array == 3).any()
    assert set(np.unique(onehot.array)) == {0, 3}


def test_image_linear_ramp_is_exact():
    i = np.arange(30, dtype=np.float32)
    array = np.broadcast_to(i[:, None, None], (30, 8, 8)).copy()
    volume = Volume(array, np.eye(4))
    affine = np.eye(4)
    affine[0, 0] = 0.5
    out = resample_to_grid(volume, affine, (59, 8, 8))
    assert_allclose(out.array[:, 3, 3], np.arange(59) * 0.5, atol=1e-5)


def test_identity_is_lossless(shared_data: Path):
    ct = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct_sm.nii.gz")
    same = resample_like(ct, ct)
    assert_array_equal(same.array, ct.array)
    assert same.array.dtype == ct.array.dtype
