"""Read DICOM headers (never pixels) and describe each 2D image plane they hold.

One :class:`Plane` per single-frame file, or per frame of a multi-frame (Enhanced) file. Planes
carry everything needed to group them into series, sort them in space and decode them later,
including the byte offset of uncompressed pixel data so that decoding can skip pydicom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from lrc.io.checks import check_rescale, check_spacing, unit_cosines
from lrc.io.errors import ImageIOError

PIXEL_DATA = 0x7FE00010
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
# Image storage classes that are not volumes a segmentation model can read.
NON_VOLUME_CLASSES = {
    SEG_SOP_CLASS: "DICOM SEG (pass it as a label map, not as an image)",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
}
UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


@dataclass(frozen=True)
class Plane:
    """One 2D image of a DICOM file, described by its header.

    Positions and orientations are in DICOM LPS patient coordinates (mm).
    """

    path: Path
    frame: int | None  # 1-based frame number in a multi-frame file, None for single-frame
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    modality: str
    series_number: int | None
    series_description: str
    acquisition_number: int | None
    rows: int
    columns: int
    orientation: tuple[float, float, float, float, float, float]
    position: tuple[float, float, float]
    pixel_spacing: tuple[float, float]
    slice_thickness: float | None
    slope: float
    intercept: float
    transfer_syntax: str
    bits_allocated: int
    bits_stored: int
    signed: bool
    samples_per_pixel: int
    pixel_offset: int | None  # file offset of uncompressed pixel data of this plane
    # The header without pixel data, for writers that reference this image (DICOM SEG).
    header: Dataset = field(compare=False, repr=False)

    @property
    def geometry_key(self) -> tuple[Any, ...]:
        """Planes with equal keys can share one voxel grid."""
        return (
            self.rows,
            self.columns,
            tuple(round(v, 4) for v in self.orientation),
            tuple(round(v, 4) for v in self.pixel_spacing),
        )


@dataclass(frozen=True)
class Skipped:
    """A file that holds no usable image plane, and why."""

    path: Path
    reason: str
    invalid: bool  # True when the file is not DICOM or is corrupt, False for a valid non-image object


def scan_file(path: Path, keep: Sequence[str] | None = None) -> list[Plane] | Skipped:
    """The image planes of one file, or why it has none. Never raises for bad content.

    ``keep``: the attributes (keywords) the planes' ``header`` keeps, ``None`` for the whole header
    without pixel data (a real CT slice's header holds ~46 KiB in memory, 3,000 slices ~140 MiB).
    """
    try:
        ds = pydicom.dcmread(path, defer_size=1024)
    except InvalidDicomError:
        return Skipped(path, "not a DICOM file (no DICM preamble)", invalid=True)
    except Exception as exc:  # pydicom raises many types on corrupt input
        return Skipped(path, f"corrupt DICOM header ({type(exc).__name__}: {exc})", invalid=True)
    try:
        planes = _planes(path, ds)
        if keep is None:
            return planes
        header = Dataset()
        for keyword in keep:
            if keyword in ds:
                header[keyword] = ds[keyword]
        return [replace(plane, header=header) for plane in planes]
    except _Skip as skip:
        return Skipped(path, str(skip), invalid=skip.invalid)
    except ImageIOError as exc:  # a header value outside the readers' shared bounds (lrc.io.checks)
        return Skipped(path, str(exc), invalid=True)
    except Exception as exc:
        return Skipped(path, f"unreadable DICOM attributes ({type(exc).__name__}: {exc})", invalid=True)


class _Skip(Exception):
    def __init__(self, reason: str, invalid: bool = False) -> None:
        super().__init__(reason)
        self.invalid = invalid


def _planes(path: Path, ds: Dataset) -> list[Plane]:
    meta = getattr(ds, "file_meta", Dataset())
    sop_class = str(ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")
    if sop_class in NON_VOLUME_CLASSES:
        raise _Skip(f"{NON_VOLUME_CLASSES[sop_class]} skipped")
    if PIXEL_DATA not in ds:
        name = UID(sop_class).name if sop_class else "unknown SOP class"
        raise _Skip(f"no pixel data ({name}) skipped")
    if "Rows" not in ds or "Columns" not in ds:
        raise _Skip("pixel data without Rows/Columns", invalid=True)
    if int(ds.Rows) < 1 or int(ds.Columns) < 1:
        raise _Skip(f"empty image ({ds.Rows} rows, {ds.Columns} columns)", invalid=True)
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples != 1:
        raise _Skip(f"colour image ({samples} samples per pixel) skipped: not a CT/MR volume")
    transfer_syntax = str(meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    bits_allocated = int(ds.get("BitsAllocated", 16))
    frames = _frames(ds.get("NumberOfFrames"))
    offset = _pixel_offset(path, ds, transfer_syntax, bits_allocated, int(ds.Rows) * int(ds.Columns), frames)
    del ds[PIXEL_DATA]
    common: dict[str, Any] = {
        "header": ds,
        "path": path,
        "sop_instance_uid": str(ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or ""),
        "sop_class_uid": sop_class,
        "study_instance_uid": str(ds.get("StudyInstanceUID") or ""),
        "series_instance_uid": str(ds.get("SeriesInstanceUID") or ""),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID") or ""),
        "modality": str(ds.get("Modality") or "OT"),
        "series_number": _int(ds.get("SeriesNumber")),
        "series_description": str(ds.get("SeriesDescription") or ""),
        "acquisition_number": _int(ds.get("AcquisitionNumber")),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "transfer_syntax": transfer_syntax,
        "bits_allocated": bits_allocated,
        "bits_stored": int(ds.get("BitsStored", bits_allocated)),
        "signed": int(ds.get("PixelRepresentation", 0)) == 1,
        "samples_per_pixel": samples,
    }
    frame_bytes = common["rows"] * common["columns"] * bits_allocated // 8
    if "PerFrameFunctionalGroupsSequence" in ds or frames > 1:
        return _enhanced_planes(ds, common, frames, offset, frame_bytes)
    if "ImageOrientationPatient" not in ds or "ImagePositionPatient" not in ds:
        raise _Skip("image without patient position/orientation (not part of a volume) skipped")
    slope, intercept = _rescale(ds.get("RescaleSlope"), ds.get("RescaleIntercept"))
    return [
        Plane(
            frame=None,
            orientation=unit_cosines(_floats(ds.ImageOrientationPatient, 6)),
            position=_floats(ds.ImagePositionPatient, 3),  # type: ignore[arg-type]
            pixel_spacing=_spacing(ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (1, 1)),
            slice_thickness=_float(ds.get("SliceThickness")),
            slope=slope,
            intercept=intercept,
            pixel_offset=offset,
            **common,
        )
    ]


def _enhanced_planes(
    ds: Dataset, common: dict[str, Any], frames: int, offset: int | None, frame_bytes: int
) -> list[Plane]:
    """Planes of a multi-frame (Enhanced / Legacy Converted Enhanced) CT or MR image."""
    shared = ds.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != frames:
        raise _Skip("multi-frame image without per-frame functional groups skipped (no plane positions)")
    planes = []
    for index, groups in enumerate(per_frame):
        orientation = _group(groups, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
        position = _group(groups, shared, "PlanePositionSequence", "ImagePositionPatient")
        if orientation is None or position is None:
            raise _Skip(f"frame {index + 1} has no plane position/orientation; skipped", invalid=True)
        spacing = _group(groups, shared, "PixelMeasuresSequence", "PixelSpacing") or (1.0, 1.0)
        thickness = _group(groups, shared, "PixelMeasuresSequence", "SliceThickness")
        slope = _group(groups, shared, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _group(groups, shared, "PixelValueTransformationSequence", "RescaleIntercept")
        slope, intercept = _rescale(
            slope if slope is not None else ds.get("RescaleSlope"),
            intercept if intercept is not None else ds.get("RescaleIntercept"),
        )
        planes.append(
            Plane(
                frame=index + 1,
                orientation=unit_cosines(_floats(orientation, 6)),
                position=_floats(position, 3),  # type: ignore[arg-type]
                pixel_spacing=_spacing(spacing),
                slice_thickness=_float(thickness),
                slope=slope,
                intercept=intercept,
                pixel_offset=None if offset is None else offset + index * frame_bytes,
                **common,
            )
        )
    return planes


def _group(frame: Dataset, shared: Dataset, sequence: str, keyword: str) -> Any:
    """An attribute from a functional group, per-frame first, then shared."""
    for source in (frame, shared):
        items = source.get(sequence)
        if items and keyword in items[0]:
            return items[0].get(keyword)
    return None


def _pixel_offset(
    path: Path, ds: Dataset, transfer_syntax: str, bits_allocated: int, pixels: int, frames: int
) -> int | None:
    """File offset of native little-endian pixel data, when it can be read as a plain array."""
    if transfer_syntax not in UNCOMPRESSED or bits_allocated not in (8, 16, 32):
        return None
    element = ds.get_item(PIXEL_DATA, keep_deferred=True)
    tell = getattr(element, "value_tell", None)
    length = getattr(element, "length", None)
    if tell is None or length is None or length == 0xFFFFFFFF:
        return None
    needed = pixels * frames * bits_allocated // 8
    if length < needed or path.stat().st_size < tell + needed:
        available = min(length, path.stat().st_size - tell)
        raise _Skip(
            f"pixel data truncated: {available} bytes for {frames} frame(s) of {pixels} pixels "
            f"at {bits_allocated} bits",
            invalid=True,
        )
    return int(tell)


def _floats(values: Any, count: int) -> tuple[float, ...]:
    result = tuple(float(v) for v in values)
    if len(result) != count or not np.all(np.isfinite(result)):
        raise _Skip(f"expected {count} finite numbers, got {values!r}", invalid=True)
    return result


def _spacing(values: Any) -> tuple[float, float]:
    row, column = _floats(values, 2)
    check_spacing((row, column), "PixelSpacing")
    return row, column


def _frames(value: Any) -> int:
    """NumberOfFrames: 1 when absent, else a whole number of at least 1."""
    if value is None or value == "":
        return 1
    frames = int(value)
    if frames < 1:
        raise _Skip(f"NumberOfFrames {value}: an image holds at least 1 frame", invalid=True)
    return frames


def _rescale(slope: Any, intercept: Any) -> tuple[float, float]:
    """RescaleSlope (1 when absent) and RescaleIntercept (0 when absent), checked (:func:`check_rescale`)."""
    stated = _float(slope)
    checked = (1.0 if stated is None else stated, _float(intercept) or 0.0)
    check_rescale(*checked, "RescaleSlope/RescaleIntercept")
    return checked


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
