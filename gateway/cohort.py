"""Bring a cohort from a PACS into the service, and push a finished result to a PACS by hand.

``import_cohort`` retrieves each series found (C-GET) and uploads it to the service as a study
(unlabeled data for pre-training; the service deduplicates repeated imports). ``push_result``
fetches a segmentation's DICOM result and sends it by C-STORE or STOW-RS.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom

from gateway.api_client import ServiceClient
from gateway.delivery import Delivery
from gateway.pacs import DimsePacs, SeriesMatch

log = logging.getLogger(__name__)


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
