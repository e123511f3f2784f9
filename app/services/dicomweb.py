"""DICOMweb STOW-RS (PS3.18 10.5): received instances into the same ingest path as uploads, and the answer.

The API receives the ``multipart/related`` body into one file per part (:mod:`app.api.related`);
here each part is identified (its UIDs, or why it cannot be DICOM), the instances are ingested as
one upload (one study, deduplicated by content like ``POST /v1/studies``), and the STOW-RS response
dataset lists every instance under ReferencedSOPSequence (stored) or FailedSOPSequence (with a
reason): 200 when all were stored, 202 when some were, 409 when none.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pydicom

from app.services import studies
from core.context import Context
from core.records.tables import Study
from lrc.io import ImageIOError

# PS3.18 table 10.5.3-1 / PS3.4 B.2.3 failure reasons.
PROCESSING_FAILURE = 0x0110
CANNOT_UNDERSTAND = 0xC000


@dataclass
class Part:
    """One received instance: where it is on disk and what its header says."""

    path: Path
    sha256: str = ""
    media_type: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    reason: int = 0  # a failure reason found before ingest (0: none yet)


@dataclass(frozen=True)
class StowAnswer:
    """The response dataset (DICOM JSON), its HTTP status, and the study's id when something was stored."""

    body: dict[str, Any]
    status: int
    study_id: str | None


def store(ctx: Context, parts: list[Part], folder: Path, created_by: str | None, project: str) -> StowAnswer:
    """Identify the received parts, ingest the DICOM ones as one study of ``project``, answer per instance."""
    for part in parts:
        identify(part)
    uploads = [studies.Upload(p.path.name, p.path, p.sha256) for p in parts if not p.reason]
    study = None
    if uploads:
        try:
            study, _ = studies.ingest(ctx, uploads, folder, created_by, project)
        except ImageIOError:  # nothing readable as an image: every instance fails (409)
            study = None
    return answer(parts, study)


def identify(part: Part) -> None:
    """Read the instance's UIDs; mark a part that is not DICOM."""
    if part.media_type not in ("application/dicom", ""):
        part.reason = CANNOT_UNDERSTAND
        return
    try:
        header = pydicom.dcmread(part.path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
    except Exception:  # pydicom raises many types on corrupt input (zlib.error, struct.error, ...)
        part.reason = CANNOT_UNDERSTAND
        return
    part.sop_class_uid = str(header.get("SOPClassUID", ""))
    part.sop_instance_uid = str(header.get("SOPInstanceUID", ""))
    if not part.sop_instance_uid:
        part.reason = CANNOT_UNDERSTAND


def _item(part: Part, reason: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if part.sop_class_uid:
        item["00081150"] = {"vr": "UI", "Value": [part.sop_class_uid]}
    if part.sop_instance_uid:
        item["00081155"] = {"vr": "UI", "Value": [part.sop_instance_uid]}
    if reason is not None:
        item["00081197"] = {"vr": "US", "Value": [reason]}
    return item


def answer(parts: list[Part], study: Study | None) -> StowAnswer:
    """The STOW-RS response dataset: stored instances, failed ones with reasons."""
    stored = {f["sha256"] for series in (study.series if study else []) for f in series.files}
    referenced = [_item(p) for p in parts if not p.reason and p.sha256 in stored]
    failed = [_item(p, p.reason or PROCESSING_FAILURE) for p in parts if p.reason or p.sha256 not in stored]
    body: dict[str, Any] = {}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    code = HTTPStatus.OK if not failed else HTTPStatus.ACCEPTED if referenced else HTTPStatus.CONFLICT
    return StowAnswer(body, code, study.id if study is not None and referenced else None)
