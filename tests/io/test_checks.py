"""lrc/io/checks.py: the bounds both readers share, at and just past their edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lrc.io import GeometryError, InvalidVoxels
from lrc.io.checks import (
    MAX_ABS_VALUE,
    check_grid,
    check_rescale,
    check_spacing,
    check_values,
    check_voxel_type,
    unit_cosines,
)


@pytest.mark.parametrize("spacing", [(0.001, 0.001), (100.0, 100.0), (0.8, 3.0), (0.005, 0.005)])
def test_spacing_inside_the_bounds(spacing: tuple[float, float]):
    check_spacing(spacing, "PixelSpacing")


@pytest.mark.parametrize(
    "spacing", [(0.0, 0.8), (1e-30, 1e-30), (0.0009, 0.8), (100.1, 1.0), (-0.8, 0.8), (math.nan, 1)]
)
def test_spacing_outside_the_bounds(spacing: tuple[float, float]):
    with pytest.raises(GeometryError, match=r"PixelSpacing .* is outside 0.001-100 mm") as raised:
        check_spacing(spacing, "PixelSpacing")
    assert raised.value.kind == "spacing_out_of_range"


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        ((1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 1, 0)),
        ((0.707, 0.707, 0, 0, 0, -1), (math.sqrt(0.5), math.sqrt(0.5), 0, 0, 0, -1)),  # 3 decimals: rounding
        ((1.0004, 0, 0, 0, 0.9996, 0), (1, 0, 0, 0, 1, 0)),
    ],
)
def test_cosines_within_rounding_are_normalised(orientation: tuple[float, ...], expected: tuple[float, ...]):
    assert_allclose(unit_cosines(orientation), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("orientation", "message"),
    [
        ((1000, 0, 0, 0, 0.001, 0), "must be unit vectors, their lengths are 1000, 0.001"),
        ((2, 0, 0, 0, 1, 0), "must be unit vectors"),
        ((1.001, 0, 0, 0, 1, 0), "must be unit vectors"),  # squared length 1.002: no rounding of 6 decimals
        ((1, 0, 0, 0.5, math.sqrt(0.75), 0), "not orthogonal"),
        ((1, 0, 0, 0.002, 1, 0), "not orthogonal"),
        ((0, 0, 0, 0, 0, 0), "must be unit vectors"),
    ],
)
def test_cosines_refused(orientation: tuple[float, ...], message: str):
    with pytest.raises(GeometryError, match=message) as raised:
        unit_cosines(orientation)
    assert raised.value.kind == "bad_orientation"


RAS_3MM = np.diag([3.0, 3.0, 3.0, 1.0])


@pytest.mark.parametrize("shape", [(2, 2, 1), (2, 2, 3), (512, 512, 1), (122, 101, 112)])
def test_grid_accepted(shape: tuple[int, int, int]):
    check_grid(shape, RAS_3MM, "image")


@pytest.mark.parametrize(
    ("shape", "affine", "kind"),
    [
        ((1, 1, 3), RAS_3MM, "too_small"),
        ((1, 64, 64), RAS_3MM, "too_small"),
        ((64, 1, 64), RAS_3MM, "too_small"),
        ((64, 64, 3), np.diag([0.0008, 0.0008, 0.002, 1.0]), "spacing_out_of_range"),  # metres taken for mm
        ((64, 64, 3), np.diag([0.8, 0.8, 150.0, 1.0]), "spacing_out_of_range"),  # a localiser, not a volume
        ((1024, 1024, 3), np.diag([5.0, 5.0, 3.0, 1.0]), "too_large"),  # 5.1 m across
        ((64, 64, 3), np.array([[3.0, 0.3, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]]), "bad_orientation"),
    ],
)
def test_grid_refused(shape: tuple[int, int, int], affine: np.ndarray, kind: str):
    with pytest.raises(GeometryError) as raised:
        check_grid(shape, affine, "image")
    assert raised.value.kind == kind
    assert str(raised.value).startswith("image: ")


@pytest.mark.parametrize(("slope", "intercept"), [(1.0, -1024.0), (-1.0, 0.0), (1e-6, 0.0), (2.5, 0.5)])
def test_rescale_accepted(slope: float, intercept: float):
    check_rescale(slope, intercept, "RescaleSlope/RescaleIntercept")


@pytest.mark.parametrize(
    ("slope", "intercept", "message"),
    [
        (0.0, -1024.0, "a slope of 0 maps every voxel to -1024"),
        (math.nan, 0.0, "must be finite numbers"),
        (math.inf, 0.0, "must be finite numbers"),
        (1.0, -math.inf, "must be finite numbers"),
        (1.0, math.nan, "must be finite numbers"),
    ],
)
def test_rescale_refused(slope: float, intercept: float, message: str):
    with pytest.raises(InvalidVoxels, match=message):
        check_rescale(slope, intercept, "RescaleSlope/RescaleIntercept")


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64"])
def test_real_scalar_types_accepted(dtype: str):
    check_voxel_type(np.dtype(dtype), "image.nii")


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        (np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")]), "colour"),  # NIfTI RGB24
        (np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")]), "colour"),  # NIfTI RGBA32
        (np.dtype("complex64"), "complex"),
        (np.dtype("complex128"), "complex"),
        (np.dtype("bool"), "boolean"),
    ],
)
def test_other_types_refused(dtype: np.dtype, kind: str):
    with pytest.raises(InvalidVoxels, match=f"image.nii: {kind}.*one real number per voxel"):
        check_voxel_type(dtype, "image.nii")


def test_values_within_the_bound_accepted():
    check_values(np.array([-MAX_ABS_VALUE, 0.0, MAX_ABS_VALUE]), "image.nii")
    check_values(np.array([np.iinfo(np.int64).max], dtype=np.int64), "image.nii")  # integers: always in bounds


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.0, 1e308, -1e308], r"values reach -1e\+308 to 1e\+308, beyond \+-1e\+30"),
        ([0.0, 2e30], "beyond"),
        ([0.0, np.nan, 1.0], "1 voxels are NaN or infinite"),
        ([np.inf, -np.inf, 1.0], "2 voxels are NaN or infinite"),
    ],
)
def test_values_refused(values: list[float], message: str):
    with pytest.raises(InvalidVoxels, match=message):
        check_values(np.array(values, dtype=np.float64), "image.nii")
