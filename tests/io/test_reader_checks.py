"""Both readers refuse grids and voxels no segmentation can use (the bounds of lrc/io/checks.py), each
with its reason: DICOM series from the factory's real CT slice, NIfTI from the real TotalSegmentator CT."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose

from lrc.io import GeometryError, InvalidDicom, InvalidVoxels, read_volume
from tests.dicom_factory import line
from tests.io.nifti_files import edited_nifti, real_ct_block

# --- DICOM -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pixel_spacing": (1e-30, 1e-30)}, r"PixelSpacing \(1e-30, 1e-30 mm\) is outside 0.001-100 mm"),
        ({"pixel_spacing": (0.0005, 0.8)}, "PixelSpacing .* is outside"),
        ({"pixel_spacing": (500.0, 500.0)}, "PixelSpacing .* is outside"),
        ({"orientation": (1000, 0, 0, 0, 0.001, 0)}, "must be unit vectors, their lengths are 1000, 0.001"),
        ({"orientation": (1, 0, 0, 0.1, 1, 0)}, "must be unit vectors"),
        ({"orientation": (1, 0, 0, 0.1, math.sqrt(0.99), 0)}, "not orthogonal"),
        ({"slope": 0.0}, "RescaleSlope/RescaleIntercept: a slope of 0 maps every voxel to -1024"),
        ({"slope": math.nan}, "RescaleSlope/RescaleIntercept: slope nan and intercept -1024 must be finite"),
        ({"slope": math.inf}, "must be finite"),
        ({"intercept": math.inf}, "must be finite"),
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # NaN and infinity: the hostile header is the point
def test_dicom_header_outside_the_bounds(make_series: Callable[..., list[Path]], options: dict[str, Any], message: str):
    files = make_series(line(3), **options)
    with pytest.raises(InvalidDicom, match=f"slice000.dcm: .*{message}"):
        read_volume(files[0].parent)


@pytest.mark.parametrize("frames", ["-5", "0"])
def test_dicom_number_of_frames_below_one(make_series: Callable[..., list[Path]], frames: str):
    (path,) = make_series(line(1))
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = frames
    ds.save_as(path)
    with pytest.raises(InvalidDicom, match=f"NumberOfFrames {frames}: an image holds at least 1 frame"):
        read_volume(path)


@pytest.mark.parametrize(
    ("positions", "options", "kind"),
    [
        (line(3), {"size": 1}, "too_small"),  # a 1 x 1 image
        (line(3, spacing=150.0), {}, "spacing_out_of_range"),  # slices 150 mm apart: a localiser
        (line(3), {"pixel_spacing": (90.0, 90.0)}, "too_large"),  # 64 pixels of 90 mm: 5.8 m across
    ],
)
def test_dicom_grid_outside_the_bounds(
    make_series: Callable[..., list[Path]],
    positions: list[tuple[float, float, float]],
    options: dict[str, Any],
    kind: str,
):
    files = make_series(positions, **options)
    with pytest.raises(GeometryError, match="series of 3 plane") as raised:
        read_volume(files[0].parent)
    assert raised.value.kind == kind


def test_dicom_smallest_image_and_rounded_cosines_are_read(make_series: Callable[..., list[Path]]):
    # Cosines off unit length by 4e-4 (rounding of the decimal strings) are normalised: spacing stays 0.8 mm.
    files = make_series(line(3), size=2, orientation=(1.0004, 0, 0, 0, 0.9996, 0))
    volume = read_volume(files[0].parent)
    assert volume.shape == (2, 2, 3)
    assert_allclose(volume.spacing, (0.8, 0.8, 2.0), atol=1e-9)
    assert_allclose(np.abs(volume.direction), np.eye(3), atol=1e-12)


# --- NIfTI -----------------------------------------------------------------------------------------


@pytest.fixture
def real_ct(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 32 x 32 x 8 block of the real CT (int16 HU) and its affine (3 mm, RAS)."""
    return real_ct_block(shared_data)


def _nifti(folder: Path, array: np.ndarray, affine: np.ndarray, **fields: Any) -> Path:
    return edited_nifti(folder / "image.nii", array, affine, **fields)


def test_nifti_rgb24_refused(real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path):
    data, affine = real_ct
    grey = np.clip(data + 1024, 0, 255).astype(np.uint8)
    rgb = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = rgb["G"] = rgb["B"] = grey
    with pytest.raises(InvalidVoxels, match=r"image.nii: colour \(RGB/RGBA\) voxels"):
        read_volume(_nifti(tmp_path, rgb, affine))


def test_nifti_complex_refused(real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path):
    data, affine = real_ct
    with pytest.raises(InvalidVoxels, match=r"complex voxels \(complex64\)"):
        read_volume(_nifti(tmp_path, data.astype(np.complex64), affine))


@pytest.mark.parametrize("value", [1e308, -1e308, 3e38])
def test_nifti_absurd_float_values_refused(real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path, value: float):
    data, affine = real_ct
    values = data.astype(np.float64)
    values[5, 5, 2] = value
    with pytest.raises(InvalidVoxels, match=r"beyond \+-1e\+30, which no imaging modality produces"):
        read_volume(_nifti(tmp_path, values, affine))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scl_slope": np.inf}, "scl_slope/scl_inter: slope inf and intercept"),
        ({"scl_slope": -np.inf}, "scl_slope/scl_inter: slope -inf and intercept"),
        ({"scl_slope": 1e30, "scl_inter": 0}, r"beyond \+-1e\+30"),  # finite, but the scaled values are not
    ],
)
def test_nifti_scaling_refused(
    real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path, fields: dict[str, float], message: str
):
    data, affine = real_ct
    with pytest.raises(InvalidVoxels, match=message):
        read_volume(_nifti(tmp_path, data, affine, **fields))


def test_nifti_nan_slope_means_no_scaling(real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path):
    data, affine = real_ct  # nibabel writes NaN into every unscaled file, as in all the real files
    volume = read_volume(_nifti(tmp_path, data, affine, scl_slope=np.nan, scl_inter=np.nan))
    assert volume.array.dtype == np.int16
    assert np.array_equal(volume.array, data)


@pytest.mark.parametrize("pixdim", [[1, 0, 0, 0, 1, 1, 1, 1], [1, 3, 3, 0, 1, 1, 1, 1], [1, -3, 3, 3, 1, 1, 1, 1]])
def test_nifti_pixdim_not_a_voxel_size_refused(
    real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path, pixdim: list[float]
):
    data, affine = real_ct  # the qform alone gives the grid: nibabel would take 0 as 1 mm
    path = _nifti(tmp_path, data, affine, pixdim=pixdim, sform_code=0, qform_code=1)
    with pytest.raises(GeometryError, match=r"image.nii: pixdim \(voxel size\) .* is outside") as raised:
        read_volume(path)
    assert raised.value.kind == "spacing_out_of_range"


@pytest.mark.parametrize(
    ("crop", "shear", "kind"),
    [
        ((slice(0, 1), slice(0, 1)), 0.0, "too_small"),
        ((slice(0, 32), slice(0, 1)), 0.0, "too_small"),
        ((slice(0, 32), slice(0, 32)), 0.5, "bad_orientation"),  # a sheared sform
    ],
)
def test_nifti_grid_refused(
    real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path, crop: tuple[slice, slice], shear: float, kind: str
):
    data, affine = real_ct
    sheared = affine.copy()
    sheared[0, 1] = shear * affine[1, 1]
    with pytest.raises(GeometryError) as raised:
        read_volume(_nifti(tmp_path, np.ascontiguousarray(data[crop]), sheared))
    assert raised.value.kind == kind


def test_nifti_in_metres_is_read_in_millimetres(real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path):
    data, affine = real_ct
    metres = np.diag([1e-3, 1e-3, 1e-3, 1.0]) @ affine
    path = _nifti(tmp_path, data, metres, xyzt_units=1)  # NIFTI_UNITS_METER
    volume = read_volume(path)
    assert_allclose(volume.affine, affine, atol=1e-6)
    assert any("lengths in meters: converted to millimetres" in w for w in volume.warnings)


def test_nifti_two_by_two_is_read(real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path):
    data, affine = real_ct
    volume = read_volume(_nifti(tmp_path, np.ascontiguousarray(data[:2, :2, :]), affine))
    assert volume.shape == (2, 2, 8)
