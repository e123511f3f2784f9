"""Bring a cohort from a PACS into the service, and push a finished result to a PACS by hand.

``import_cohort`` retrieves each series found (C-GET) and uploads it to the service as a study
(unlabeled data for pre-training; the service deduplicates repeated imports). ``import_dataset``
also retrieves the DICOM SEGs or RTSTRUCTs that reference those series and makes a fine-tuning
dataset of them. ``push_result`` fetches a segmentation's DICOM result and sends it by C-STORE or STOW-RS.
With a :class:`~gateway.deidentify.Pseudonyms` mapping, series (and their labels) are
de-identified before upload, and a pushed result gets the original identifiers back.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom

from gateway.api_client import ServiceClient
from gateway.deidentify import Pseudonyms
from gateway.delivery import Delivery
from gateway.errors import GatewayError
from gateway.pacs import Pacs, SeriesMatch
from lrc.io import read_volume
from lrc.io.nifti import write_nifti
from lrc.io.rtstruct_read import read_rois, read_rtstruct, referenced_series
from lrc.writers import get_writer

log = logging.getLogger(__name__)


class CohortError(GatewayError):
    """The cohort cannot be brought in as asked."""


@dataclass(frozen=True)
class Imported:
    """A series now stored in the service."""

    series_uid: str
    series_ids: list[str]
    files: int
    pseudonym_series_uid: str | None = None


def import_cohort(
    pacs: Pacs,
    client: ServiceClient,
    matches: Iterable[SeriesMatch],
    work_dir: Path,
    pseudonyms: Pseudonyms | None = None,
) -> Iterator[Imported]:
    """Retrieve and upload each series (de-identified with ``pseudonyms``), one at a time."""
    for match in matches:
        folder = Path(tempfile.mkdtemp(prefix="cohort-", dir=work_dir))
        try:
            yield _import_series(pacs, client, match, folder, pseudonyms)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _import_series(
    pacs: Pacs, client: ServiceClient, match: SeriesMatch, folder: Path, pseudonyms: Pseudonyms | None
) -> Imported:
    """Retrieve one series into ``folder`` (where it stays) and upload it, de-identified if asked."""
    files = pacs.get_series(match.study_uid, match.series_uid, folder)
    pseudonym = None
    if pseudonyms is not None:
        pseudonym = pseudonyms.deidentify_folder(folder, folder / "deid")[match.series_uid]
    series_ids = client.upload(folder / "deid" if pseudonym else folder, pseudonym or match.series_uid)
    log.info("series %s: %d files -> %s", match.series_uid, len(files), series_ids)
    return Imported(match.series_uid, series_ids, len(files), pseudonym)


def push_result(
    client: ServiceClient,
    delivery: Delivery,
    segmentation_id: str,
    fmt: str,
    work_dir: Path,
    pseudonyms: Pseudonyms | None = None,
) -> str:
    """Send a segmentation's ``fmt`` result (``dicom-seg``, ``rtstruct``), re-identified; its SOP Instance UID."""
    with tempfile.TemporaryDirectory(dir=work_dir) as folder:
        path = Path(folder) / f"{segmentation_id}.{fmt}{get_writer(fmt).extension}"
        data = client.result(segmentation_id, fmt)
        path.write_bytes(pseudonyms.reidentify_bytes(data) if pseudonyms else data)
        sop_uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        delivery.send(path)
    return sop_uid


def _references(header: pydicom.Dataset) -> set[str]:
    """The series a SEG (ReferencedSeriesSequence) or an RTSTRUCT (its frame of reference tree) is drawn on."""
    found = {str(item.get("SeriesInstanceUID", "")) for item in header.get("ReferencedSeriesSequence", [])}
    return found | referenced_series(header)


def _label_for(pacs: Pacs, image: SeriesMatch, folder: Path) -> Path | None:
    """A DICOM SEG (or else an RTSTRUCT) in the image's study that references the image series."""
    for modality in ("SEG", "RTSTRUCT"):
        for candidate in pacs.find_series(modality=modality, study_uid=image.study_uid):
            for path in pacs.get_series(candidate.study_uid, candidate.series_uid, folder / candidate.series_uid):
                if image.series_uid in _references(pydicom.dcmread(path, stop_before_pixels=True)):
                    return path
    return None


def _add_names(table: dict[int, str], names: Iterable[str]) -> dict[str, int]:
    """Label values for ROI names: the value already meaning that name, or the next free one."""
    values = {meaning: number for number, meaning in table.items()}
    for name in names:
        if name not in values:
            values[name] = max(table, default=0) + 1
            table[values[name]] = name
    return values


def import_dataset(
    pacs: Pacs,
    client: ServiceClient,
    name: str,
    matches: Iterable[SeriesMatch],
    work_dir: Path,
    pseudonyms: Pseudonyms | None = None,
) -> dict[str, Any]:
    """A fine-tuning dataset from image series and the DICOM SEGs or RTSTRUCTs that reference them in the PACS.

    Series without either are skipped (logged). SEG segment numbers become label values (the SEGs
    must agree on what each number means); RTSTRUCT ROIs are rasterised on the image series' grid
    and sent as NIfTI, an ROI name taking the value that already means it, or the next free one.

    Raises:
        CohortError: no series has a label object, or two SEGs give one segment number different names.
    """
    cases: list[dict[str, Any]] = []
    label_files: list[Path] = []
    table: dict[int, str] = {}
    for match in matches:
        label = _label_for(pacs, match, work_dir / "labels")
        if label is None:
            log.info("series %s: no DICOM SEG or RTSTRUCT references it; skipped", match.series_uid)
            continue
        header = pydicom.dcmread(label, stop_before_pixels=True)
        unique = work_dir / f"label-{len(label_files):05d}"  # no UID in the name: it may be de-identified
        folder = Path(tempfile.mkdtemp(prefix="cohort-", dir=work_dir))
        try:
            imported = _import_series(pacs, client, match, folder, pseudonyms)
            if header.Modality == "RTSTRUCT":
                values = _add_names(table, [roi.name for roi in read_rois(label)])
                image = read_volume(sorted(folder.glob("*.dcm")))
                labels, _ = read_rtstruct(label, image, values)
                unique = write_nifti(labels, unique.with_name(unique.name + ".nii.gz"))
            else:
                _check_segments(table, header)
                dataset = pydicom.dcmread(label)
                if pseudonyms is not None:  # its references must name the uploaded (pseudonymous) series
                    pseudonyms.deidentify(dataset)
                unique = unique.with_name(unique.name + ".dcm")
                dataset.save_as(unique, enforce_file_format=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        label_files.append(unique)
        cases.append({"image": {"series_id": imported.series_ids[0]}, "label": unique.name})
    if not cases:
        raise CohortError("none of the series found has a DICOM SEG or RTSTRUCT referencing it in the PACS")
    return client.create_dataset(name, table, cases, label_files)


def _check_segments(table: dict[int, str], header: pydicom.Dataset) -> None:
    for item in header.get("SegmentSequence", []):
        number, meaning = int(item.SegmentNumber), str(item.SegmentLabel)
        if table.setdefault(number, meaning) != meaning:
            raise CohortError(f"segment {number} is {table[number]!r} in one SEG and {meaning!r} in another")
