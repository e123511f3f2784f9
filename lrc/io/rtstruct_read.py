"""RT Structure Set (RTSTRUCT) in: contours rasterised to a label map on the referenced series' grid.

Each ROI's CLOSED_PLANAR (and CLOSEDPLANAR_XOR) contours are filled slice by slice (a voxel belongs
to the ROI when its centre lies inside the polygon, ``skimage.draw.polygon``); the contours of one ROI on one slice are
combined by the even-odd rule, so a contour inside another is a hole (PS3.3 C.8.8.6 leaves the
combination to the reader; this is what planning systems and :mod:`lrc.io.rtstruct` assume, and
what CLOSEDPLANAR_XOR states, C.8.8.6.3).
Where ROIs overlap, the later ROI wins. Points and open contours are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from skimage.draw import polygon

from lrc.io.errors import SegmentationFormatError
from lrc.io.labels import Label, LabelTable
from lrc.io.volume import Volume

CLOSED_TYPES = ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR")
PLANE_TOLERANCE = 0.25  # of a slice: how far a contour may lie off the slice plane it is drawn on


@dataclass(frozen=True)
class Roi:
    """One ROI of a structure set: its number, name, display colour and contours (each N x 3, LPS mm)."""

    number: int
    name: str
    color: tuple[int, int, int] | None
    contours: tuple[np.ndarray, ...]


def read_rois(path: str | os.PathLike[str] | Dataset) -> list[Roi]:
    """The ROIs of an RTSTRUCT with their closed planar contours (incl. XOR), in StructureSetROISequence order.

    Raises:
        SegmentationFormatError: not an RTSTRUCT, or a contour with a malformed point list.
    """
    ds = path if isinstance(path, Dataset) else pydicom.dcmread(path)
    if ds.get("Modality") != "RTSTRUCT" or "StructureSetROISequence" not in ds:
        raise SegmentationFormatError(f"not an RT Structure Set (Modality {ds.get('Modality')!r})")
    contours: dict[int, tuple[tuple[int, int, int] | None, list[np.ndarray]]] = {}
    for item in ds.get("ROIContourSequence", []):
        rgb = [int(c) for c in item.get("ROIDisplayColor") or []]
        color = (rgb[0], rgb[1], rgb[2]) if len(rgb) == 3 else None
        found: list[np.ndarray] = []
        for contour in item.get("ContourSequence", []):
            if contour.get("ContourGeometricType") not in CLOSED_TYPES:
                continue
            values = np.asarray(contour.ContourData, dtype=np.float64)
            if values.size % 3:
                raise SegmentationFormatError(f"ROI {item.ReferencedROINumber}: ContourData of {values.size} numbers")
            if values.size >= 9:
                found.append(values.reshape(-1, 3))  # N x 3 LPS mm
        contours[int(item.ReferencedROINumber)] = (color, found)
    rois = []
    for roi in ds.StructureSetROISequence:
        color, found = contours.get(int(roi.ROINumber), (None, []))
        rois.append(Roi(int(roi.ROINumber), str(roi.get("ROIName", "")), color, tuple(found)))
    return rois


def referenced_series(ds: Dataset) -> set[str]:
    """The SeriesInstanceUIDs an RTSTRUCT's contours are drawn on (ReferencedFrameOfReferenceSequence)."""
    return {
        str(series.SeriesInstanceUID)
        for frame in ds.get("ReferencedFrameOfReferenceSequence", [])
        for study in frame.get("RTReferencedStudySequence", [])
        for series in study.get("RTReferencedSeriesSequence", [])
        if "SeriesInstanceUID" in series
    }


def read_rtstruct(
    path: str | os.PathLike[str] | Dataset, image: Volume, values: Mapping[str, int] | None = None
) -> tuple[Volume, LabelTable]:
    """Rasterise an RTSTRUCT's ROIs on ``image``'s grid.

    Args:
        path: the RTSTRUCT file (or its dataset).
        image: the volume of the series the contours were drawn on.
        values: ROI name -> label value; ROIs not named are left out. Default: ROIs numbered 1, 2, ...
            in their order in the file.

    Returns:
        The label map (uint8, or uint16 past 255 labels) on ``image``'s grid, and its label table.

    Raises:
        SegmentationFormatError: not an RTSTRUCT, or a contour off every slice plane of the image.
    """
    rois = read_rois(path)
    if values is None:
        values = {roi.name: position for position, roi in enumerate(rois, start=1)}
    chosen = [(values[roi.name], roi) for roi in rois if roi.name in values]
    dtype = np.uint8 if max((v for v, _ in chosen), default=0) < 256 else np.uint16
    out = np.zeros(image.shape, dtype=dtype)  # XYZ
    inverse = np.linalg.inv(image.lps_affine)
    for value, roi in chosen:
        mask = np.zeros(image.shape, dtype=bool)  # XYZ
        for points in roi.contours:
            voxels = (np.column_stack([points, np.ones(len(points))]) @ inverse.T)[:, :3]  # N x 3 (i, j, k)
            k = int(np.rint(voxels[:, 2].mean()))
            if np.abs(voxels[:, 2] - k).max() > PLANE_TOLERANCE:
                raise SegmentationFormatError(
                    f"ROI {roi.name!r}: a contour does not lie on a slice of the image (k from "
                    f"{voxels[:, 2].min():.2f} to {voxels[:, 2].max():.2f}); is it drawn on another series?"
                )
            if not 0 <= k < image.shape[2]:
                raise SegmentationFormatError(f"ROI {roi.name!r}: a contour on slice {k}, outside the image")
            rr, cc = polygon(voxels[:, 0], voxels[:, 1], image.shape[:2])
            fill = np.zeros(image.shape[:2], dtype=bool)
            fill[rr, cc] = True
            mask[:, :, k] ^= fill  # even-odd: a contour inside another is a hole
        out[mask] = value
    labels: dict[int, Label] = {}
    for value, roi in chosen:  # two ROIs of one name share a value; the first names it
        labels.setdefault(value, Label.named(value, roi.name, roi.color))
    table = LabelTable(labels.values())
    return image.with_array(out, modality="OT", source=None), table
