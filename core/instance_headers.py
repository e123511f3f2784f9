"""What a produced DICOM instance (SEG, RTSTRUCT) is recorded with: the attributes QIDO-RS answers with,
per query level, read from its header as DICOM JSON, so that a search reads no file."""

from __future__ import annotations

from pathlib import Path

import pydicom

from core.records.tables import ResultInstance

STUDY_TAGS = (
    "SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
    "StudyDescription",
)  # fmt: skip
SERIES_TAGS = ("Modality", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber", "SeriesDate", "SeriesTime")
INSTANCE_TAGS = (
    "SOPClassUID", "SOPInstanceUID", "InstanceNumber", "ContentDate", "ContentTime", "ContentLabel",
    "ContentDescription", "Rows", "Columns", "NumberOfFrames", "StructureSetLabel",
)  # fmt: skip
LEVEL_TAGS = {
    "study": STUDY_TAGS,
    "series": STUDY_TAGS + SERIES_TAGS,
    "instance": STUDY_TAGS + SERIES_TAGS + INSTANCE_TAGS,
}


def describe(path: Path, segmentation_id: str, fmt: str, sha256: str, project: str) -> ResultInstance:
    """The record of a produced instance of ``project`` (its segmentation's), from its header (no pixel data)."""
    header = pydicom.dcmread(path, stop_before_pixels=True)
    kept = pydicom.Dataset()
    for keyword in LEVEL_TAGS["instance"]:
        if keyword in header:
            kept[keyword] = header[keyword]
    return ResultInstance(
        sop_instance_uid=str(header.SOPInstanceUID),
        project=project,
        segmentation_id=segmentation_id,
        format=fmt,
        sha256=sha256,
        study_instance_uid=str(header.StudyInstanceUID),
        series_instance_uid=str(header.SeriesInstanceUID),
        sop_class_uid=str(header.SOPClassUID),
        modality=str(header.Modality),
        patient_id=str(header.get("PatientID", "")),
        attributes=kept.to_json_dict(),
    )
