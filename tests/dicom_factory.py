"""Generate DICOM series for tests from a real CT slice (dcmqi's GE LightSpeed abdomen).

Every generated slice carries the real header of ``ct-3slice/01.dcm`` and a down-sampled copy of
its real pixels, with the geometry, UIDs and encoding a test asks for. Pixel ``[row 0, col 0]``
of each slice holds a marker (stored value ``100 + index``, ``index`` = place in the list of
positions given) so that tests can check the slice order that reading produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def template_path(shared_data: Path) -> Path:
    """The real CT slice the factory builds from."""
    return shared_data / "dicom" / "seg_dcmqi" / "ct-3slice" / "01.dcm"


def real_pixels(shared_data: Path, size: int) -> np.ndarray:
    """The template's pixels (stored values), block-averaged down to ``size x size``."""
    ds = pydicom.dcmread(template_path(shared_data))
    pixels = ds.pixel_array.astype(np.float64)
    factor = pixels.shape[0] // size
    small = pixels[: size * factor, : size * factor].reshape(size, factor, size, factor).mean(axis=(1, 3))
    return np.round(small).astype(ds.pixel_array.dtype)


def write_series(
    shared_data: Path,
    folder: Path,
    positions: Sequence[Sequence[float]],
    *,
    orientation: Sequence[float] = AXIAL,
    size: int = 64,
    pixel_spacing: tuple[float, float] = (0.8, 0.8),
    series_uid: str | None = None,
    study_uid: str | None = None,
    uids: bool = True,
    names: Sequence[str] | None = None,
    instance_numbers: Sequence[int] | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    transfer_syntax: str = ExplicitVRLittleEndian,
    acquisition_number: int = 1,
    sizes: Sequence[int] | None = None,
    sop_uids: Sequence[str] | None = None,
) -> list[Path]:
    """Write one slice per position; return the file paths in the order of ``positions``."""
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(template_path(shared_data))
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or template.StudyInstanceUID
    frame_uid = template.FrameOfReferenceUID
    paths = []
    for index, position in enumerate(positions):
        ds = pydicom.dcmread(template_path(shared_data))
        n = sizes[index] if sizes else size
        pixels = real_pixels(shared_data, n).copy()
        pixels[0, 0] = 100 + index
        ds.Rows, ds.Columns = n, n
        ds.PixelData = pixels.tobytes()
        ds.PixelSpacing = [f"{pixel_spacing[0]:g}", f"{pixel_spacing[1]:g}"]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SliceLocation = f"{position[2]:.4f}"
        ds.InstanceNumber = instance_numbers[index] if instance_numbers else index + 1
        ds.AcquisitionNumber = acquisition_number
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        sop_uid = sop_uids[index] if sop_uids else generate_uid()
        if uids:
            ds.SOPInstanceUID = sop_uid
            ds.SeriesInstanceUID = series_uid
            ds.StudyInstanceUID = study_uid
            ds.FrameOfReferenceUID = frame_uid
        else:
            for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
                setattr(ds, keyword, "")
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        if transfer_syntax != pydicom.uid.ImplicitVRLittleEndian:
            if transfer_syntax == ExplicitVRLittleEndian:
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            else:
                ds.compress(transfer_syntax)
        path = folder / (names[index] if names else f"slice{index:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def line(count: int, spacing: float = 2.0, start: float = -100.0) -> list[tuple[float, float, float]]:
    """Axial positions along z from ``start``, ``spacing`` mm apart."""
    return [(-25.0, -25.0, start + spacing * k) for k in range(count)]
