"""``/dicomweb``: STOW-RS (PS3.18 10.5) into the same ingest path as uploads; QIDO-RS and WADO-RS of the
DICOM SEG and RTSTRUCT instances the service produced (:mod:`app.services.dicomweb_results`).

A PACS or a DICOMweb client stores instances with ``POST /dicomweb/studies``
(``multipart/related; type="application/dicom"``). The body is streamed to disk part by part in
bounded memory, within ``LRC_MAX_UPLOAD_BYTES``; the instances are ingested as one upload (one
study, deduplicated by content like ``POST /v1/studies``). The answer is the STOW-RS response
dataset (``application/dicom+json``): every instance under ReferencedSOPSequence (stored) or
FailedSOPSequence (with a reason); 200 when all were stored, 202 when some were, 409 when none.
The study's id in this service is in the ``Location`` header.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import pydicom
from fastapi import APIRouter, Header, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydicom.errors import InvalidDicomError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from app.api.deps import ContextDep, Submitter, Viewer
from app.api.uploads import work_folder
from app.errors import InvalidRequest, UnsupportedMediaType, UploadTooLarge
from app.records.models import Study
from app.services import dicomweb_results as results
from app.services import studies
from lrc.io import ImageIOError

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

MEDIA_TYPE = "application/dicom+json"
MAX_PARTS = 100_000
# PS3.18 table 10.5.3-1 / PS3.4 B.2.3 failure reasons.
PROCESSING_FAILURE = 0x0110
CANNOT_UNDERSTAND = 0xC000
STOW_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            'multipart/related; type="application/dicom"': {
                "schema": {"type": "string", "format": "binary", "description": "DICOM instances, one per part"}
            }
        },
    }
}


@dataclass
class Part:
    """One received instance: where it is on disk and what its header says."""

    path: Path
    sha256: str = ""
    media_type: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    reason: int = 0  # a failure reason found before ingest (0: none yet)


@dataclass
class _Reader:
    """Callbacks of the streaming multipart parser: each part's body into its own file."""

    folder: Path
    parts: list[Part] = field(default_factory=list)
    _sink: BinaryIO | None = None
    _digest: Any = None
    _header: bytes = b""
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _value: bytes = b""

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: setattr(self, "_header", self._header + data[start:end]),
            "on_header_value": lambda data, start, end: setattr(self, "_value", self._value + data[start:end]),
            "on_header_end": self._header_end,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise InvalidRequest(f"more than {MAX_PARTS} instances in one request")
        part = Part(self.folder / f"{len(self.parts):06d}.dcm")
        self.parts.append(part)
        self._sink = part.path.open("wb")
        self._digest = hashlib.sha256()
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._header.strip().lower()] = self._value.strip()
        self._header, self._value = b"", b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        assert self._sink is not None
        self._sink.write(data[start:end])
        self._digest.update(data[start:end])

    def _end(self) -> None:
        assert self._sink is not None
        self._sink.close()
        self._sink = None
        part = self.parts[-1]
        part.sha256 = self._digest.hexdigest()
        part.media_type = parse_options_header(self._headers.get(b"content-type", b""))[0].decode("latin-1")

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


async def receive_related(request: Request, folder: Path, limit: int) -> list[Part]:
    """Stream a ``multipart/related`` body into one file per part under ``folder``.

    Raises:
        UnsupportedMediaType: not ``multipart/related; type="application/dicom"``.
        UploadTooLarge: more than ``limit`` bytes.
        InvalidRequest: a malformed body.
    """
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    kind = options.get(b"type", b"application/dicom").lower()
    if media_type != b"multipart/related" or kind != b"application/dicom" or b"boundary" not in options:
        raise UnsupportedMediaType(
            'STOW-RS takes multipart/related; type="application/dicom" with a boundary, '
            f"not {request.headers.get('content-type') or 'no content type'}"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"the request ({declared} bytes) is larger than the limit of {limit} bytes")
    reader = _Reader(folder)
    parser = MultipartParser(options[b"boundary"], reader.callbacks())  # type: ignore[arg-type]
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise UploadTooLarge(f"the request is larger than the limit of {limit} bytes (LRC_MAX_UPLOAD_BYTES)")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest(f"malformed multipart/related body: {exc}") from exc
    finally:
        reader.close()
    if not reader.parts:
        raise InvalidRequest("the request holds no instance")
    return reader.parts


def _identify(part: Part) -> None:
    """Read the instance's UIDs; mark a part that is not DICOM."""
    if part.media_type not in ("application/dicom", ""):
        part.reason = CANNOT_UNDERSTAND
        return
    try:
        header = pydicom.dcmread(part.path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
    except (InvalidDicomError, OSError, ValueError):
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


def stow_response(parts: list[Part], study: Study | None) -> JSONResponse:
    """The STOW-RS response dataset: stored instances, failed ones with reasons."""
    stored = {f["sha256"] for series in (study.series if study else []) for f in series.files}
    referenced = [_item(p) for p in parts if not p.reason and p.sha256 in stored]
    failed = [_item(p, p.reason or PROCESSING_FAILURE) for p in parts if p.reason or p.sha256 not in stored]
    body: dict[str, Any] = {}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    code = status.HTTP_200_OK if not failed else status.HTTP_202_ACCEPTED if referenced else status.HTTP_409_CONFLICT
    headers = {"Location": f"/v1/studies/{study.id}"} if study is not None and referenced else None
    return JSONResponse(body, status_code=code, media_type=MEDIA_TYPE, headers=headers)


@router.post("/studies", openapi_extra=STOW_BODY, response_class=JSONResponse)
async def store_instances(request: Request, ctx: ContextDep, caller: Submitter) -> JSONResponse:
    """STOW-RS: store instances as a study (see the module's description for the answer)."""
    with work_folder(ctx.settings.work_dir) as folder:
        parts = await receive_related(request, folder, ctx.settings.max_upload_bytes)
        for part in parts:
            _identify(part)
        uploads = [studies.Upload(p.path.name, p.path, p.sha256) for p in parts if not p.reason]
        study = None
        if uploads:
            try:
                study, _ = await run_in_threadpool(studies.ingest, ctx, uploads, folder, caller.key_id)
            except ImageIOError:  # nothing readable as an image: every instance fails (409)
                study = None
    return stow_response(parts, study)


# QIDO-RS: search the produced instances (viewer role). Tags are those cached at export; see docs/pacs.md.
SEARCH = {"response_class": JSONResponse, "responses": {200: {"content": {MEDIA_TYPE: {}}}}}


def _found(found: results.SearchResult) -> JSONResponse:
    headers = None
    if found.ignored:  # PS3.18 8.3.4.4: unsupported keys are ignored, with a warning
        headers = {"Warning": f'299 lrc "query parameters not supported, ignored: {", ".join(found.ignored)}"'}
    return JSONResponse(found.datasets, media_type=MEDIA_TYPE, headers=headers)


def _search(ctx: ContextDep, request: Request, level: str, **uids: str) -> JSONResponse:
    results.check_accept(request.headers.get("accept", ""), (MEDIA_TYPE, "application/json"))
    params = request.query_params.multi_items()
    return _found(results.search(ctx, level, params, str(request.base_url), **uids))


@router.get("/studies", **SEARCH)  # type: ignore[arg-type]
def search_studies(request: Request, ctx: ContextDep, _: Viewer) -> JSONResponse:
    """QIDO-RS: studies holding produced SEG/RTSTRUCT instances (``StudyInstanceUID``, ``Modality``, ...)."""
    return _search(ctx, request, "study")


@router.get("/series", **SEARCH)  # type: ignore[arg-type]
def search_series(request: Request, ctx: ContextDep, _: Viewer) -> JSONResponse:
    """QIDO-RS: produced series in any study."""
    return _search(ctx, request, "series")


@router.get("/studies/{study}/series", **SEARCH)  # type: ignore[arg-type]
def search_study_series(study: str, request: Request, ctx: ContextDep, _: Viewer) -> JSONResponse:
    """QIDO-RS: produced series of a study."""
    return _search(ctx, request, "series", study=study)


@router.get("/instances", **SEARCH)  # type: ignore[arg-type]
def search_instances(request: Request, ctx: ContextDep, _: Viewer) -> JSONResponse:
    """QIDO-RS: produced instances in any study."""
    return _search(ctx, request, "instance")


@router.get("/studies/{study}/instances", **SEARCH)  # type: ignore[arg-type]
def search_study_instances(study: str, request: Request, ctx: ContextDep, _: Viewer) -> JSONResponse:
    """QIDO-RS: produced instances of a study."""
    return _search(ctx, request, "instance", study=study)


@router.get("/studies/{study}/series/{series}/instances", **SEARCH)  # type: ignore[arg-type]
def search_series_instances(study: str, series: str, request: Request, ctx: ContextDep, _: Viewer) -> JSONResponse:
    """QIDO-RS: produced instances of a series."""
    return _search(ctx, request, "instance", study=study, series=series)


# WADO-RS: the stored instances (multipart/related) and their headers (metadata), viewer role.
RELATED = 'multipart/related; type="application/dicom"'
RETRIEVE = {"response_class": StreamingResponse, "responses": {200: {"content": {RELATED: {}}}}}


def _retrieve(
    ctx: ContextDep, accept: str | None, study: str, series: str | None, sop: str | None
) -> StreamingResponse:
    results.check_accept(accept or "", ("multipart/related",))
    paths = results.retrieve(ctx, study, series, sop)
    boundary = uuid.uuid4().hex
    body = results.multipart_related(paths, boundary)
    return StreamingResponse(body, media_type=f"{RELATED}; boundary={boundary}")


def _metadata(ctx: ContextDep, accept: str | None, study: str, series: str | None, sop: str | None) -> JSONResponse:
    results.check_accept(accept or "", (MEDIA_TYPE, "application/json"))
    return JSONResponse(results.metadata(ctx, study, series, sop), media_type=MEDIA_TYPE)


AcceptHeader = Annotated[str | None, Header()]


@router.get("/studies/{study}", **RETRIEVE)  # type: ignore[arg-type]
def retrieve_study(study: str, ctx: ContextDep, _: Viewer, accept: AcceptHeader = None) -> StreamingResponse:
    """WADO-RS: the produced instances of a study."""
    return _retrieve(ctx, accept, study, None, None)


@router.get("/studies/{study}/series/{series}", **RETRIEVE)  # type: ignore[arg-type]
def retrieve_series(
    study: str, series: str, ctx: ContextDep, _: Viewer, accept: AcceptHeader = None
) -> StreamingResponse:
    """WADO-RS: the instances of a produced series."""
    return _retrieve(ctx, accept, study, series, None)


@router.get("/studies/{study}/series/{series}/instances/{sop}", **RETRIEVE)  # type: ignore[arg-type]
def retrieve_instance(
    study: str, series: str, sop: str, ctx: ContextDep, _: Viewer, accept: AcceptHeader = None
) -> StreamingResponse:
    """WADO-RS: one produced instance, as stored."""
    return _retrieve(ctx, accept, study, series, sop)


@router.get("/studies/{study}/metadata", **SEARCH)  # type: ignore[arg-type]
def study_metadata(study: str, ctx: ContextDep, _: Viewer, accept: AcceptHeader = None) -> JSONResponse:
    """WADO-RS: the headers of a study's produced instances (DICOM JSON, no pixel data)."""
    return _metadata(ctx, accept, study, None, None)


@router.get("/studies/{study}/series/{series}/metadata", **SEARCH)  # type: ignore[arg-type]
def series_metadata(study: str, series: str, ctx: ContextDep, _: Viewer, accept: AcceptHeader = None) -> JSONResponse:
    """WADO-RS: the headers of a produced series' instances."""
    return _metadata(ctx, accept, study, series, None)


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata", **SEARCH)  # type: ignore[arg-type]
def instance_metadata(
    study: str, series: str, sop: str, ctx: ContextDep, _: Viewer, accept: AcceptHeader = None
) -> JSONResponse:
    """WADO-RS: the header of one produced instance."""
    return _metadata(ctx, accept, study, series, sop)
