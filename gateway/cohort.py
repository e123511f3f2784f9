"""Bring a cohort from a PACS into the service, and push a finished result to a PACS by hand.

``import_cohort`` retrieves each series found (C-GET) and uploads it to the service as a study
(unlabeled data for pre-training; the service deduplicates repeated imports). ``import_dataset``
also retrieves the DICOM SEGs that reference those series and makes a fine-tuning dataset of
them (RTSTRUCT labels are not read by the service yet). ``push_result``
fetches a segmentation's DICOM result and sends it by C-STORE or STOW-RS.
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
from gateway.delivery import Delivery
from gateway.errors import GatewayError
from gateway.pacs import DimsePacs, SeriesMatch

log = logging.getLogger(__name__)


class CohortError(GatewayError):
    """The cohort cannot be brought in as asked."""


@dataclass(frozen=True)
class Imported:
    """A series now stored in the service."""

    series_uid: str
    series_ids: list[str]
    files: int


def import_cohort(
    pacs: DimsePacs, client: ServiceClient, matches: Iterable[SeriesMatch], work_dir: Path
) -> Iterator[Imported]:
    """Retrieve and upload each series, one at a time (the work folder holds one series at most)."""
    for match in matches:
        folder = Path(tempfile.mkdtemp(prefix="cohort-", dir=work_dir))
        try:
            files = pacs.get_series(match.study_uid, match.series_uid, folder)
            series_ids = client.upload(folder, match.series_uid)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        log.info("series %s: %d files -> %s", match.series_uid, len(files), series_ids)
        yield Imported(match.series_uid, series_ids, len(files))


def push_result(client: ServiceClient, delivery: Delivery, segmentation_id: str, fmt: str, work_dir: Path) -> str:
    """Send a segmentation's ``fmt`` result (``dicom-seg``, ``rtstruct``); its SOP Instance UID."""
    with tempfile.TemporaryDirectory(dir=work_dir) as folder:
        path = Path(folder) / f"{segmentation_id}.{fmt}.dcm"
        path.write_bytes(client.result(segmentation_id, fmt))
        sop_uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        delivery.send(path)
    return sop_uid


def _label_for(pacs: DimsePacs, image: SeriesMatch, folder: Path) -> Path | None:
    """A DICOM SEG in the image's study that references the image series, retrieved into ``folder``."""
    for candidate in pacs.find_series(modality="SEG", study_uid=image.study_uid):
        for path in pacs.get_series(candidate.study_uid, candidate.series_uid, folder / candidate.series_uid):
            header = pydicom.dcmread(path, stop_before_pixels=True)
            referenced = {str(item.get("SeriesInstanceUID", "")) for item in header.get("ReferencedSeriesSequence", [])}
            if image.series_uid in referenced:
                return path
    return None


def import_dataset(
    pacs: DimsePacs, client: ServiceClient, name: str, matches: Iterable[SeriesMatch], work_dir: Path
) -> dict[str, Any]:
    """A fine-tuning dataset from image series and the DICOM SEGs that reference them in the PACS.

    Series without a SEG are skipped (logged). Segment numbers become label values; the SEGs must
    agree on what each number means.

    Raises:
        CohortError: no series has a SEG, or two SEGs give one segment number different names.
    """
    cases: list[dict[str, Any]] = []
    label_files: list[Path] = []
    table: dict[int, str] = {}
    for match in matches:
        label = _label_for(pacs, match, work_dir / "labels")
        if label is None:
            log.info("series %s: no DICOM SEG references it; skipped", match.series_uid)
            continue
        segments = pydicom.dcmread(label, stop_before_pixels=True).get("SegmentSequence", [])
        for item in segments:
            number, meaning = int(item.SegmentNumber), str(item.SegmentLabel)
            if table.setdefault(number, meaning) != meaning:
                raise CohortError(f"segment {number} is {table[number]!r} in one SEG and {meaning!r} in another")
        (imported,) = import_cohort(pacs, client, [match], work_dir)
        unique = work_dir / f"{len(label_files):05d}-{label.name}"
        label.rename(unique)
        label_files.append(unique)
        cases.append({"image": {"series_id": imported.series_ids[0]}, "label": unique.name})
    if not cases:
        raise CohortError("none of the series found has a DICOM SEG referencing it in the PACS")
    return client.create_dataset(name, table, cases, label_files)
