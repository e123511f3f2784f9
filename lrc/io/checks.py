"""What both readers (DICOM and NIfTI) refuse: grids and voxel values no segmentation can use.

One set of bounds, so that a REST upload, a STOW-RS push and a C-STORE into the gateway refuse the
same images for the same reasons (the gateway checks each instance with the DICOM reader).

Bounds and why:

* **Voxel spacing** in [:data:`MIN_SPACING_MM`, :data:`MAX_SPACING_MM`] = [0.001, 100] mm along
  every axis (pixel spacing and slice spacing). CT and MR voxels are 0.1-10 mm, micro-CT reaches
  ~1-5 um; nothing tomographic is finer than 1 um, and a zero or 1e-30 spacing makes the affine
  singular. Slices 100 mm apart are no volume (a localiser), and resampling such voxels to a model's
  ~1 mm multiplies the voxel count by 100 per axis.
* **Field of view** at most :data:`MAX_EXTENT_MM` = 5000 mm along every axis (voxels x spacing):
  longer than any patient and any table travel; larger grids are unit mistakes (metres read as
  millimetres give 1000x) and would be resampled to millions of pixels per side.
* **Image plane** at least :data:`MIN_PLANE` x :data:`MIN_PLANE` = 2 x 2 voxels (``i``, ``j``: DICOM
  columns and rows, NIfTI's first two axes); one slice through-plane is fine. A 2D network
  convolves in that plane and the resamplers interpolate in it, which needs two samples per axis;
  the predictor pads any smaller slice to what the network needs (32 x 32 at least).
* **Direction cosines** (DICOM ImageOrientationPatient, NIfTI affine columns) of unit length and
  orthogonal within :data:`COSINE_TOLERANCE` = 1e-3 (on the squared length and on the dot product,
  GDCM's ``DirectionCosines::IsValid``). The standard says they are unit vectors (PS3.3
  C.7.6.2.1.1); deviations within the tolerance are rounding of the decimal strings and are
  normalised away, larger ones are refused: scaling a cosine would silently rescale the spacing.
* **Voxel values** real scalars (integers or floats; no colour, no complex numbers), finite, and
  within +-:data:`MAX_ABS_VALUE` = 1e30 after rescaling: far above any modality (HU to ~3e4, PET to
  ~1e8 Bq/ml, 32-bit stored integers to 4.3e9) and far below float32's 3.4e38, so that a window's
  width (a difference of two values) stays finite in the float32 the models compute in. A DICOM
  rescale slope of 0 maps every pixel to one value and is refused too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lrc.io.errors import GeometryError, InvalidVoxels

MIN_SPACING_MM = 1e-3
MAX_SPACING_MM = 100.0
MAX_EXTENT_MM = 5000.0
MIN_PLANE = 2
COSINE_TOLERANCE = 1e-3
MAX_ABS_VALUE = 1e30


def check_spacing(spacing: Sequence[float], what: str) -> None:
    """Raise unless every value of ``spacing`` (mm) lies in [:data:`MIN_SPACING_MM`, :data:`MAX_SPACING_MM`].

    Args:
        spacing: voxel sizes in mm.
        what: where they come from, for the message (``"slice000.dcm: PixelSpacing"``).

    Raises:
        GeometryError: ``spacing_out_of_range``.
    """
    bad = [s for s in spacing if not (math.isfinite(s) and MIN_SPACING_MM <= s <= MAX_SPACING_MM)]
    if bad:
        values = ", ".join(f"{s:g}" for s in spacing)
        raise GeometryError(
            "spacing_out_of_range",
            f"{what} ({values} mm) is outside {MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm, the voxel sizes of "
            "CT, MR and micro-CT; the header's geometry is broken (or not in millimetres)",
        )


def unit_cosines(orientation: Sequence[float]) -> tuple[float, float, float, float, float, float]:
    """DICOM ImageOrientationPatient as two unit vectors, after checking they are nearly that already.

    Raises:
        GeometryError: ``bad_orientation``: a cosine's squared length is not 1, or the two are not
            orthogonal, within :data:`COSINE_TOLERANCE`.
    """
    row = np.asarray(orientation[:3], dtype=np.float64)
    column = np.asarray(orientation[3:6], dtype=np.float64)
    _check_axes(np.stack([row, column], axis=1), f"ImageOrientationPatient {tuple(orientation)}")
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    x, y, z = (float(v) for v in row)
    u, v, w = (float(c) for c in column)
    return (x, y, z, u, v, w)


def _check_axes(axes: np.ndarray, what: str) -> None:
    """Raise unless the columns of ``axes`` (3 x N) are unit vectors, pairwise orthogonal, within the tolerance."""
    lengths = (axes**2).sum(axis=0)
    if np.any(np.abs(lengths - 1.0) > COSINE_TOLERANCE):
        raise GeometryError(
            "bad_orientation",
            f"{what}: direction cosines must be unit vectors, their lengths are "
            f"{', '.join(f'{math.sqrt(v):g}' for v in lengths)}",
        )
    for a in range(axes.shape[1]):
        for b in range(a + 1, axes.shape[1]):
            dot = float(axes[:, a] @ axes[:, b])
            if abs(dot) > COSINE_TOLERANCE:
                raise GeometryError(
                    "bad_orientation",
                    f"{what}: axes {a} and {b} are not orthogonal (cosine {dot:.4f}, tolerance {COSINE_TOLERANCE:g})",
                )


def check_grid(shape: Sequence[int], affine: np.ndarray, what: str) -> None:
    """Raise unless a volume's grid is one a segmentation can use (see the module docstring).

    Args:
        shape: voxels along ``i, j, k``.
        affine: 4x4 voxel-to-world matrix (mm).
        what: the image, for the message.

    Raises:
        GeometryError: ``too_small``, ``spacing_out_of_range``, ``too_large`` or ``bad_orientation``.
    """
    if min(shape[:2]) < MIN_PLANE:
        raise GeometryError(
            "too_small",
            f"{what}: an image of {'x'.join(map(str, shape[:3]))} voxels; the image plane needs at least "
            f"{MIN_PLANE}x{MIN_PLANE} voxels to be segmented",
        )
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    check_spacing([float(s) for s in spacing], f"{what}: voxel spacing")
    extent = spacing * np.asarray(shape[:3], dtype=np.float64)
    if np.any(extent > MAX_EXTENT_MM):
        raise GeometryError(
            "too_large",
            f"{what}: the grid spans {', '.join(f'{e:.0f}' for e in extent)} mm, over {MAX_EXTENT_MM:.0f} mm "
            "(longer than any patient): the spacing is wrong or not in millimetres",
        )
    _check_axes(columns / spacing, f"{what}: affine")


def check_rescale(slope: float, intercept: float, what: str) -> None:
    """Raise unless a rescale (DICOM RescaleSlope/Intercept, NIfTI scl_slope/scl_inter) is finite and keeps the image.

    Raises:
        InvalidVoxels: a slope or intercept that is NaN or infinite, or a slope of 0 (every voxel one value).
    """
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise InvalidVoxels(f"{what}: slope {slope:g} and intercept {intercept:g} must be finite numbers")
    if slope == 0:
        raise InvalidVoxels(f"{what}: a slope of 0 maps every voxel to {intercept:g}; no image is left")


def check_voxel_type(dtype: np.dtype, what: str) -> None:
    """Raise unless ``dtype`` is a real scalar (an integer or a float of at most 64 bits).

    Raises:
        InvalidVoxels: colour (RGB, RGBA), complex, boolean or 128-bit voxels.
    """
    if dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize <= 8):
        return
    kind = {"c": "complex", "V": "colour (RGB/RGBA)", "b": "boolean"}.get(dtype.kind, str(dtype))
    raise InvalidVoxels(
        f"{what}: {kind} voxels ({dtype}); a medical image for segmentation holds one real number per voxel: "
        "convert it to integers or float32 (a colour image to grey, a complex one to its magnitude)"
    )


def check_values(array: np.ndarray, what: str) -> None:
    """Raise unless a float array's values are finite and within +-:data:`MAX_ABS_VALUE`.

    One pass for the minimum and one for the maximum (NaN propagates into both); no copy of the array.

    Raises:
        InvalidVoxels: NaN or infinite values, or values beyond the bound.
    """
    if array.dtype.kind != "f" or array.size == 0:
        return
    values = ValueRange()
    values.add(array)
    values.check(what)


class ValueRange:
    """The range of an image's values gathered part by part (slabs read one at a time), and the check of
    :func:`check_values` on the whole: the same verdict and message as on the image in one array."""

    def __init__(self) -> None:
        self.low = math.inf
        self.high = -math.inf
        self.nonfinite = 0  # NaN or infinite voxels
        self.floating = False

    def add(self, part: np.ndarray) -> None:
        """Take the values of ``part`` (one dtype for every part of an image) into the range."""
        self.floating = part.dtype.kind == "f"
        if part.size == 0:
            return
        low, high = float(part.min()), float(part.max())
        if math.isfinite(low) and math.isfinite(high):
            self.low, self.high = min(self.low, low), max(self.high, high)
        else:  # NaN propagates into min and max: a part with finite ends holds finite values only
            self.nonfinite += int(part.size - np.count_nonzero(np.isfinite(part)))

    def check(self, what: str) -> None:
        """Raise unless the values added so far pass :func:`check_values` (integers always do).

        Raises:
            InvalidVoxels: NaN or infinite values, or values beyond the bound.
        """
        if not self.floating:
            return
        if self.nonfinite:
            raise InvalidVoxels(f"{what}: {self.nonfinite} voxels are NaN or infinite")
        if max(-self.low, self.high) > MAX_ABS_VALUE:
            raise InvalidVoxels(
                f"{what}: values reach {self.low:g} to {self.high:g}, beyond +-{MAX_ABS_VALUE:g}, which no imaging "
                "modality produces: a broken scaling or not an image"
            )
