"""RT Structure Set (RTSTRUCT) out of a label map, for radiotherapy planning systems.

Each label becomes one ROI; each connected outline on each slice becomes one CLOSED_PLANAR
contour (marching squares at the 0.5 iso-line, in patient LPS millimetres) referencing the
source slice it lies on. Holes are written as separate contours inside their outer contour;
planning systems combine the contours of a slice by the even-odd rule, as the standard intends.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid
from skimage import measure

import lrc
from lrc.io.atomic import write_dataset
from lrc.io.dicom_encode import decimal_strings
from lrc.io.dicom_scan import RTSTRUCT_SOP_CLASS
from lrc.io.errors import SegmentationFormatError
from lrc.io.geometry import align_to
from lrc.io.labels import LabelTable
from lrc.io.volume import COPIED_ATTRIBUTES, LPS_TO_RAS, Volume, VolumeInfo

CONTOUR_DATA = 0x30060050


def write_rtstruct(
    labels: Volume,
    image: Volume | VolumeInfo,
    table: LabelTable,
    path: str | os.PathLike[str],
    *,
    structure_set_label: str = "LRC",
    series_description: str = "LRC structures",
    series_number: int = 902,
    tolerance_voxels: float = 0.0,
) -> Path:
    """Write a label map as an RTSTRUCT that references ``image``'s source series.

    Args:
        labels: integer label map on ``image``'s grid.
        image: the volume read from DICOM that the labels were drawn on; its grid and source are used,
            so its headers alone do (:func:`lrc.io.read_dicom_info`).
        table: label value -> name and colour; labels absent from the map are left out.
        path: output file, written atomically.
        tolerance_voxels: 0 (default) keeps every vertex where an outline turns, which loses nothing
            (marching squares' points between them are collinear); above 0, Douglas-Peucker
            simplification at that many voxels (fewer points, ~10x slower; below ~0.35 voxels it
            removes almost nothing more, as a pixel staircase's corners are that far apart).

    Raises:
        SegmentationFormatError: the image has no complete DICOM source, or a label is unknown.
        LabelGeometryMismatch: the label map is not on the image grid.
    """
    source = image.source
    if source is None or not source.has_uids or any(f is not None for f in source.frames):
        raise SegmentationFormatError(
            "an RTSTRUCT must reference single-frame DICOM slices with UIDs; this image has none "
            "(read from NIfTI, tilt-corrected, multi-frame or without UIDs)"
        )
    labels = align_to(labels, image)
    present = [int(v) for v in np.unique(labels.array.reshape(-1, order="A")) if v != 0]  # no C-order copy
    unknown = [v for v in present if v not in table]
    if unknown:
        raise SegmentationFormatError(f"label values {unknown} are not in the label table (known: {list(table)})")

    ds = _header(image, structure_set_label, series_description, series_number)
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    ds.RTROIObservationsSequence = Sequence()
    lps = LPS_TO_RAS @ image.affine  # voxel -> patient LPS mm
    for number, value in enumerate(present, start=1):
        label = table[value]
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = source.frame_of_reference_uid
        roi.ROIName = label.name
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        ds.StructureSetROISequence.append(roi)

        contour_item = Dataset()
        contour_item.ROIDisplayColor = list(label.color)
        contour_item.ReferencedROINumber = number
        contour_item.ContourSequence = Sequence(
            _contours(labels.array == value, lps, source.sop_class_uid, source.sop_instance_uids, tolerance_voxels)
        )
        ds.ROIContourSequence.append(contour_item)

        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN"
        observation.ROIInterpreter = ""
        ds.RTROIObservationsSequence.append(observation)
    return write_dataset(ds, path)


def _contours(
    mask: np.ndarray, lps: np.ndarray, sop_class: str, sop_instances: tuple[str, ...], tolerance: float
) -> list[Dataset]:
    items = []
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        # Marching squares over the label's bounding box only (its time is the area it scans), padded
        # so that outlines touching the border close.
        rows, columns = np.flatnonzero(mask[:, :, k].any(axis=1)), np.flatnonzero(mask[:, :, k].any(axis=0))
        box = mask[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1, k]
        offset = np.array([rows[0] - 1.0, columns[0] - 1.0])  # padded box -> slice (i, j)
        for outline in measure.find_contours(np.pad(box.astype(np.float32), 1), 0.5):
            closed = measure.approximate_polygon(outline, tolerance) if tolerance > 0 else outline
            points = _turns(closed[:-1]) + offset  # N x 2 (i, j), the first point not repeated
            if len(points) < 3:
                continue
            voxels = np.column_stack([points, np.full(len(points), k), np.ones(len(points))])  # N x 4
            world = (voxels @ lps.T)[:, :3]  # N x 3 LPS mm
            image_ref = Dataset()
            image_ref.ReferencedSOPClassUID = sop_class
            image_ref.ReferencedSOPInstanceUID = sop_instances[k]
            item = Dataset()
            item.ContourImageSequence = Sequence([image_ref])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(world)
            item[CONTOUR_DATA] = decimal_strings(CONTOUR_DATA, [f"{v:.4f}" for v in world.ravel()])
            items.append(item)
    return items


def _turns(points: np.ndarray) -> np.ndarray:
    """The vertices of a closed polygon (``N x 2``, first point not repeated) where it changes direction."""
    points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]  # repeated points: no direction
    before = points - np.roll(points, 1, axis=0)  # step into each vertex
    after = np.roll(points, -1, axis=0) - points  # step out of it
    turn = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    return points[np.abs(turn) > 1e-9]


def _header(
    image: Volume | VolumeInfo, structure_set_label: str, series_description: str, series_number: int
) -> Dataset:
    source = image.source
    assert source is not None
    now = dt.datetime.now()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(RTSTRUCT_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    for keyword in COPIED_ATTRIBUTES:
        setattr(ds, keyword, source.attributes.get(keyword, ""))
    ds.StudyInstanceUID = source.study_instance_uid
    ds.FrameOfReferenceUID = source.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.InstanceNumber = 1
    ds.Manufacturer = "LRC"
    ds.ManufacturerModelName = "lrc"
    ds.SoftwareVersions = lrc.__version__
    ds.OperatorsName = ""
    ds.StructureSetLabel = structure_set_label
    ds.StructureSetDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = now.strftime("%H%M%S")
    ds.SeriesDate = ds.StructureSetDate
    ds.SeriesTime = ds.StructureSetTime

    images = Sequence()
    for uid in source.sop_instance_uids:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.sop_class_uid
        ref.ReferencedSOPInstanceUID = uid
        images.append(ref)
    series = Dataset()
    series.SeriesInstanceUID = source.series_instance_uid
    series.ContourImageSequence = images
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, required here)
    study.ReferencedSOPInstanceUID = source.study_instance_uid
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = source.frame_of_reference_uid
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    return ds
