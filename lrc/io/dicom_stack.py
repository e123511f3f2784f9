"""Sort the planes of one series in space and check that they form a regular grid.

Slices are ordered by their position along the slice normal (ImagePositionPatient projected on
the cross product of the ImageOrientationPatient cosines), never by file name or InstanceNumber,
and the slice spacing is measured from those positions, never read from SliceThickness.

What is fixed and what is refused (each with a message that says where):

* same position twice, same SOP instance (a file copied twice): the copy is dropped, with a note;
* same position twice, different instances: refused (``duplicate_positions``): usually two
  phases or acquisitions in one series, which must not be mixed;
* spacing jitter under ``jitter_fraction`` of the spacing: accepted, mean spacing, with a note
  when above 0.1 %;
* gaps that are whole multiples of the spacing: refused (``missing_slices``), with the gap;
* any other uneven spacing: refused (``nonuniform_spacing``);
* slice positions offset in-plane (gantry tilt): refused (``gantry_tilt``) unless
  ``correct_tilt`` is set; then the stack is resampled onto an orthogonal grid (see
  :mod:`lrc.io.dicom_read`) and loses its link to the source instances;
* positions not on one line: refused (``bad_orientation``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrc.io.dicom_scan import Plane
from lrc.io.errors import GeometryError

TILT_TOLERANCE_DEG = 0.05


@dataclass(frozen=True)
class Stack:
    """Planes of one grid in slice order, and the vector from one slice to the next (LPS mm)."""

    planes: tuple[Plane, ...]
    step: np.ndarray
    tilt_shift: np.ndarray | None  # in-plane (i, j) offset in voxels per slice when tilted
    notes: tuple[str, ...]


def normal_of(orientation: tuple[float, ...]) -> np.ndarray:
    """Unit slice normal (LPS) of an ImageOrientationPatient value."""
    row = np.asarray(orientation[:3])
    column = np.asarray(orientation[3:])
    normal = np.cross(row, column)
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6 or abs(float(row @ column)) > 1e-3:
        raise GeometryError(
            "bad_orientation", f"ImageOrientationPatient {orientation} is not two orthogonal unit vectors"
        )
    return normal / norm


def assemble(planes: list[Plane], correct_tilt: bool = False, jitter_fraction: float = 0.05) -> Stack:
    """Order planes of one geometry along their normal and validate the spacing.

    Raises:
        GeometryError: duplicate positions, missing slices, uneven spacing, tilt (unless
            ``correct_tilt``), or positions that do not lie on a line.
    """
    first = planes[0]
    normal = normal_of(first.orientation)
    positions = np.array([p.position for p in planes])  # N x 3 (LPS)
    distance = positions @ normal  # N
    order = np.argsort(distance, kind="stable")
    ordered = [planes[i] for i in order]
    positions = positions[order]
    distance = distance[order]
    notes: list[str] = []

    ordered, positions, distance = _drop_copies(ordered, positions, distance, notes)
    if len(ordered) == 1:
        thickness = first.slice_thickness or 1.0
        notes.append(f"single slice: slice spacing taken from SliceThickness ({thickness} mm)")
        return Stack(tuple(ordered), normal * thickness, None, tuple(notes))

    gaps = np.diff(distance)  # N-1, > 0 after _drop_copies
    spacing = float(np.median(gaps))
    _check_spacing(gaps, spacing, distance, jitter_fraction, notes)

    step = (positions[-1] - positions[0]) / (len(ordered) - 1)  # 3
    along = float(step @ normal)
    lateral = step - along * normal
    # Positions must lie on one line: deviation from the straight fit, in mm.
    fitted = positions[0] + np.outer(np.arange(len(ordered)), step)
    off_line = float(np.abs(positions - fitted).max())
    if off_line > max(0.1, 0.1 * spacing):
        raise GeometryError(
            "bad_orientation",
            f"slice positions do not lie on a line: one is {off_line:.2f} mm off (sheared or mixed stack)",
        )
    tilt = float(np.degrees(np.arctan2(np.linalg.norm(lateral), abs(along))))
    shift = None
    if tilt > TILT_TOLERANCE_DEG:
        if not correct_tilt:
            raise GeometryError(
                "gantry_tilt",
                f"slices are offset in-plane by a gantry tilt of {tilt:.2f} "
                "degrees; pass correct_tilt=True (lrc: --correct-tilt) to resample the stack "
                "onto an orthogonal grid",
            )
        row, column = np.asarray(first.orientation[:3]), np.asarray(first.orientation[3:])
        shift = np.array([lateral @ row / first.pixel_spacing[1], lateral @ column / first.pixel_spacing[0]])
        notes.append(f"gantry tilt of {tilt:.2f} degrees corrected by resampling onto an orthogonal grid")
        step = along * normal
    return Stack(tuple(ordered), step, shift, tuple(notes))


def _drop_copies(
    planes: list[Plane], positions: np.ndarray, distance: np.ndarray, notes: list[str]
) -> tuple[list[Plane], np.ndarray, np.ndarray]:
    """Drop second copies of the same instance; refuse two instances at one position."""
    same = np.flatnonzero(np.diff(distance) < 1e-3)
    if same.size == 0:
        return planes, positions, distance
    keep = np.ones(len(planes), dtype=bool)
    for index in same:
        a, b = planes[index], planes[index + 1]
        if a.sop_instance_uid and a.sop_instance_uid == b.sop_instance_uid and a.frame == b.frame:
            keep[index + 1] = False
        else:
            raise GeometryError(
                "duplicate_positions",
                f"{int(same.size)} slice position(s) occur twice (first at {distance[index]:.2f} mm along "
                f"the normal, files {a.path.name} and {b.path.name}): several phases or acquisitions "
                "are mixed in one series; export them as separate series",
            )
    notes.append(f"{int((~keep).sum())} duplicate copies of the same instance dropped")
    return [p for p, k in zip(planes, keep, strict=True) if k], positions[keep], distance[keep]


def _check_spacing(
    gaps: np.ndarray, spacing: float, distance: np.ndarray, jitter_fraction: float, notes: list[str]
) -> None:
    deviation = np.abs(gaps - spacing)
    worst = int(np.argmax(deviation))
    if deviation[worst] <= jitter_fraction * spacing:
        if deviation[worst] > 1e-3 * spacing + 1e-4:
            notes.append(
                f"slice spacing varies by up to {deviation[worst]:.3f} mm around {spacing:.3f} mm; mean spacing used"
            )
        return
    where = f"between positions {distance[worst]:.2f} and {distance[worst + 1]:.2f} mm along the normal"
    ratio = gaps / spacing
    if np.all(np.abs(ratio - np.round(ratio)) < jitter_fraction):
        missing = int(np.round(ratio).sum() - len(gaps))
        raise GeometryError(
            "missing_slices",
            f"slices are {spacing:.3f} mm apart but there is a gap of {gaps[worst]:.2f} mm {where}: about "
            f"{missing} slice(s) missing; send the complete series",
        )
    raise GeometryError(
        "nonuniform_spacing",
        f"slice spacing is not uniform: {spacing:.3f} mm typically, {gaps[worst]:.3f} mm {where}",
    )
