"""Comparing written DICOM objects (SEG, RTSTRUCT) by content: their bytes with the run-specific values fixed."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom

# Values that change from one run to the next: new UIDs and the time of writing.
VOLATILE = {
    "SOPInstanceUID": "1.2.3",
    "MediaStorageSOPInstanceUID": "1.2.3",
    "SeriesInstanceUID": "1.2.4",
    "DimensionOrganizationUID": "1.2.5",
    "InstanceCreationDate": "20000101",
    "InstanceCreationTime": "000000",
    "ContentDate": "20000101",
    "ContentTime": "000000",
    "ContributionDateTime": "20000101000000",
    "StructureSetDate": "20000101",
    "StructureSetTime": "000000",
    "SeriesDate": "20000101",
    "SeriesTime": "000000",
}
# The object's own UIDs, fixed at the top level only: inside sequences the same keywords name the series
# and instances referenced, which must stay as written.
OWN = ("SOPInstanceUID", "SeriesInstanceUID")


def normalised_bytes(path: Path) -> bytes:
    """The file's bytes with the run-specific values (:data:`VOLATILE`) fixed; :data:`OWN` at the top level only."""
    ds = pydicom.dcmread(path)

    def fix(dataset: pydicom.Dataset, _element: pydicom.DataElement) -> None:
        for keyword, value in VOLATILE.items():
            if keyword in dataset and keyword not in OWN:
                setattr(dataset, keyword, value)

    ds.walk(fix)
    for keyword in OWN:
        if keyword in ds:
            setattr(ds, keyword, VOLATILE[keyword])
    for keyword, value in VOLATILE.items():
        if keyword in ds.file_meta:
            setattr(ds.file_meta, keyword, value)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
