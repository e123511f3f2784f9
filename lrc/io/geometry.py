"""Grid arithmetic shared by the readers, writers and resamplers.

All affines here are voxel (``i, j, k``) to world (RAS+ mm) unless a name says LPS.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from lrc.io.errors import LabelGeometryMismatch
from lrc.io.volume import LPS_TO_RAS, Volume, VolumeInfo, spacing_of


def affine_from_dicom(
    row_cosine: np.ndarray,
    column_cosine: np.ndarray,
    pixel_spacing: tuple[float, float],
    first_position: np.ndarray,
    slice_step: np.ndarray,
) -> np.ndarray:
    """The RAS affine of a DICOM slice stack.

    DICOM PS3.3 C.7.6.2.1.1: ``P = S + X * dc * i + Y * dr * j`` where ``X`` (the first three values
    of ImageOrientationPatient) is the direction along a row (increasing column index ``i``), ``Y``
    the direction down a column (increasing row index ``j``), ``dc = PixelSpacing[1]`` and
    ``dr = PixelSpacing[0]``. The third column is the vector from one slice position to the next.

    Args:
        row_cosine: ImageOrientationPatient[:3] (LPS).
        column_cosine: ImageOrientationPatient[3:] (LPS).
        pixel_spacing: PixelSpacing as stored (row spacing, column spacing) in mm.
        first_position: ImagePositionPatient of slice ``k = 0`` (LPS).
        slice_step: position of slice ``k + 1`` minus slice ``k`` (LPS, mm).
    """
    lps = np.eye(4)
    lps[:3, 0] = np.asarray(row_cosine, dtype=np.float64) * float(pixel_spacing[1])
    lps[:3, 1] = np.asarray(column_cosine, dtype=np.float64) * float(pixel_spacing[0])
    lps[:3, 2] = np.asarray(slice_step, dtype=np.float64)
    lps[:3, 3] = np.asarray(first_position, dtype=np.float64)
    return LPS_TO_RAS @ lps


def axis_codes(affine: np.ndarray) -> str:
    """Orientation letters of the voxel axes, e.g. ``"LPS"`` for a usual DICOM axial stack."""
    return "".join(nib.orientations.aff2axcodes(affine))


def same_grid(
    a_affine: np.ndarray,
    a_shape: tuple[int, ...],
    b_affine: np.ndarray,
    b_shape: tuple[int, ...],
    tolerance_mm: float = 1e-3,
) -> bool:
    """True when two grids place every voxel at the same world point (within ``tolerance_mm``)."""
    if tuple(a_shape[:3]) != tuple(b_shape[:3]):
        return False
    corners = _corners(a_shape)
    return bool(np.abs((a_affine - b_affine) @ corners).max() <= tolerance_mm)


def _corners(shape: tuple[int, ...]) -> np.ndarray:
    """The 8 corner voxels of a grid as a 4x8 homogeneous matrix."""
    x, y, z = (s - 1 for s in shape[:3])
    return np.array([[i, j, k, 1.0] for i in (0, x) for j in (0, y) for k in (0, z)], dtype=np.float64).T


def align_to(label: Volume, reference: Volume | VolumeInfo, tolerance_mm: float = 0.5) -> Volume:
    """Put ``label`` on ``reference``'s voxel grid when both grids hold the same voxels.

    Grids that differ only by axis order or flips (a NIfTI written LAS for a DICOM read LPS, say)
    are reoriented without interpolation. A label map already on the grid keeps its memory layout
    (C or Fortran order; the predictor's is Fortran, a 512x512x300 copy costs ~0.5 s); a reoriented
    one is copied to C order, never returned as a view with negative strides. Anything else is
    refused: silently resampling a label map hides a label that was drawn on another image.

    Raises:
        LabelGeometryMismatch: the grids differ in size, spacing, position or orientation (see
            :func:`orientation_onto`).
    """
    transform = orientation_onto(label.shape, label.affine, reference.shape, reference.affine, tolerance_mm)
    array = nib.orientations.apply_orientation(label.array, transform)
    if not (array.flags.c_contiguous or array.flags.f_contiguous):  # flipped or permuted views: copy
        array = np.ascontiguousarray(array)
    return Volume(array, reference.affine, modality=label.modality, source=None, warnings=label.warnings)


def orientation_onto(
    label_shape: tuple[int, int, int],
    label_affine: np.ndarray,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    tolerance_mm: float = 0.5,
) -> np.ndarray:
    """The axis order and flips (nibabel's orientation transform) that put a label grid on an image's grid.

    Decided from the grids alone, so a label map's file can be checked against its image before
    any voxel is read; :func:`align_to` applies the transform.

    Raises:
        LabelGeometryMismatch: the reoriented grid differs from the image's in size, or places a
            corner voxel more than ``tolerance_mm`` from the image's (the message gives both grids).
    """
    transform = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(label_affine), nib.orientations.io_orientation(affine)
    )
    reoriented = [0, 0, 0]
    for axis, (target, _) in enumerate(transform):
        reoriented[int(target)] = label_shape[axis]
    if tuple(reoriented) != tuple(shape):
        raise LabelGeometryMismatch(
            f"label map has shape {tuple(label_shape)} ({axis_codes(label_affine)}) but the image has "
            f"{tuple(shape)} ({axis_codes(affine)}): it was not drawn on this image"
        )
    moved = label_affine @ nib.orientations.inv_ornt_aff(transform, label_shape)
    error = float(np.abs((moved - affine) @ _corners(shape)).max())
    if error > tolerance_mm:
        raise LabelGeometryMismatch(
            f"label map and image have the same shape {tuple(shape)} but their grids are "
            f"{error:.2f} mm apart (tolerance {tolerance_mm} mm); label spacing "
            f"{_fmt(spacing_of(label_affine))} origin {_fmt(label_affine[:3, 3])}, image spacing "
            f"{_fmt(spacing_of(affine))} origin {_fmt(affine[:3, 3])}"
        )
    return transform


def _fmt(values: tuple[float, ...] | np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def reorient(volume: Volume, codes: str = "RAS") -> Volume:
    """The same voxels with axes permuted/flipped so that they point along ``codes`` (no interpolation).

    Undo with :func:`align_to` onto the original volume.
    """
    transform = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(volume.affine), nib.orientations.axcodes2ornt(tuple(codes))
    )
    array = nib.orientations.apply_orientation(volume.array, transform)
    affine = volume.affine @ nib.orientations.inv_ornt_aff(transform, volume.array.shape)
    return Volume(np.ascontiguousarray(array), affine, volume.modality, volume.source, volume.warnings)
