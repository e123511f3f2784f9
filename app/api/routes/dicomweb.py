"""``/dicomweb``: DICOMweb STOW-RS (PS3.18 10.5) into the same ingest path as uploads
(:mod:`app.services.dicomweb`); QIDO-RS and WADO-RS of the DICOM SEG and RTSTRUCT instances the
service produced (:mod:`app.services.dicomweb_results`).

A PACS or a DICOMweb client stores instances with ``POST /dicomweb/studies``
(``multipart/related; type="application/dicom"``), streamed to disk part by part within
``LRC_MAX_UPLOAD_BYTES`` (:mod:`app.api.related`). The answer is the STOW-RS response dataset
(``application/dicom+json``); the study's id in this service is in the ``Location`` header.
Searches and retrieval need a viewer key, storing a submitter key.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import ContextDep, Principal, PublicUrl, Submitter, Viewer
from app.api.related import receive_related
from app.services import dicomweb as stow
from app.services import dicomweb_results as results
from core.storage import staging_folder

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

MEDIA_TYPE = "application/dicom+json"
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


@router.post("/studies", openapi_extra=STOW_BODY, response_class=JSONResponse)
async def store_instances(request: Request, ctx: ContextDep, caller: Submitter) -> JSONResponse:
    """STOW-RS: store instances as a study (see the module's description for the answer)."""
    with staging_folder(ctx.settings.work_dir) as folder:
        parts = await receive_related(request, folder, ctx.settings.max_upload_bytes)
        stored = await run_in_threadpool(stow.store, ctx, parts, folder, caller.key_id, caller.project)
    headers = {"Location": f"/v1/studies/{stored.study_id}"} if stored.study_id else None
    return JSONResponse(stored.body, status_code=stored.status, media_type=MEDIA_TYPE, headers=headers)


# QIDO-RS: search the produced instances (viewer role). Tags are those cached at export; see docs/pacs.md.
SEARCH = {"response_class": JSONResponse, "responses": {200: {"content": {MEDIA_TYPE: {}}}}}


def _found(found: results.SearchResult) -> JSONResponse:
    headers = None
    if found.ignored:  # PS3.18 8.3.4.4: unsupported keys are ignored, with a warning
        headers = {"Warning": f'299 lrc "query parameters not supported, ignored: {", ".join(found.ignored)}"'}
    return JSONResponse(found.datasets, media_type=MEDIA_TYPE, headers=headers)


def _search(ctx: ContextDep, caller: Principal, request: Request, base: str, level: str, **uids: str) -> JSONResponse:
    results.check_accept(request.headers.get("accept", ""), (MEDIA_TYPE, "application/json"))
    params = request.query_params.multi_items()
    return _found(results.search(ctx, caller.project, level, params, base, **uids))


@router.get("/studies", **SEARCH)  # type: ignore[arg-type]
def search_studies(request: Request, ctx: ContextDep, caller: Viewer, base: PublicUrl) -> JSONResponse:
    """QIDO-RS: studies holding produced SEG/RTSTRUCT instances (``StudyInstanceUID``, ``Modality``, ...)."""
    return _search(ctx, caller, request, base, "study")


@router.get("/series", **SEARCH)  # type: ignore[arg-type]
def search_series(request: Request, ctx: ContextDep, caller: Viewer, base: PublicUrl) -> JSONResponse:
    """QIDO-RS: produced series in any study."""
    return _search(ctx, caller, request, base, "series")


@router.get("/studies/{study}/series", **SEARCH)  # type: ignore[arg-type]
def search_study_series(study: str, request: Request, ctx: ContextDep, caller: Viewer, base: PublicUrl) -> JSONResponse:
    """QIDO-RS: produced series of a study."""
    return _search(ctx, caller, request, base, "series", study=study)


@router.get("/instances", **SEARCH)  # type: ignore[arg-type]
def search_instances(request: Request, ctx: ContextDep, caller: Viewer, base: PublicUrl) -> JSONResponse:
    """QIDO-RS: produced instances in any study."""
    return _search(ctx, caller, request, base, "instance")


@router.get("/studies/{study}/instances", **SEARCH)  # type: ignore[arg-type]
def search_study_instances(
    study: str, request: Request, ctx: ContextDep, caller: Viewer, base: PublicUrl
) -> JSONResponse:
    """QIDO-RS: produced instances of a study."""
    return _search(ctx, caller, request, base, "instance", study=study)


@router.get("/studies/{study}/series/{series}/instances", **SEARCH)  # type: ignore[arg-type]
def search_series_instances(
    study: str, series: str, request: Request, ctx: ContextDep, caller: Viewer, base: PublicUrl
) -> JSONResponse:
    """QIDO-RS: produced instances of a series."""
    return _search(ctx, caller, request, base, "instance", study=study, series=series)


# WADO-RS: the stored instances (multipart/related) and their headers (metadata), viewer role.
RELATED = 'multipart/related; type="application/dicom"'
RETRIEVE = {"response_class": StreamingResponse, "responses": {200: {"content": {RELATED: {}}}}}


def _retrieve(
    ctx: ContextDep, caller: Principal, accept: str | None, study: str, series: str | None, sop: str | None
) -> StreamingResponse:
    results.check_accept(accept or "", ("multipart/related",))
    paths = results.retrieve(ctx, caller.project, study, series, sop)
    boundary = uuid.uuid4().hex
    body = results.multipart_related(paths, boundary)
    return StreamingResponse(body, media_type=f"{RELATED}; boundary={boundary}")


def _metadata(
    ctx: ContextDep, caller: Principal, accept: str | None, study: str, series: str | None, sop: str | None
) -> JSONResponse:
    results.check_accept(accept or "", (MEDIA_TYPE, "application/json"))
    return JSONResponse(results.metadata(ctx, caller.project, study, series, sop), media_type=MEDIA_TYPE)


AcceptHeader = Annotated[str | None, Header()]


@router.get("/studies/{study}", **RETRIEVE)  # type: ignore[arg-type]
def retrieve_study(study: str, ctx: ContextDep, caller: Viewer, accept: AcceptHeader = None) -> StreamingResponse:
    """WADO-RS: the produced instances of a study."""
    return _retrieve(ctx, caller, accept, study, None, None)


@router.get("/studies/{study}/series/{series}", **RETRIEVE)  # type: ignore[arg-type]
def retrieve_series(
    study: str, series: str, ctx: ContextDep, caller: Viewer, accept: AcceptHeader = None
) -> StreamingResponse:
    """WADO-RS: the instances of a produced series."""
    return _retrieve(ctx, caller, accept, study, series, None)


@router.get("/studies/{study}/series/{series}/instances/{sop}", **RETRIEVE)  # type: ignore[arg-type]
def retrieve_instance(
    study: str, series: str, sop: str, ctx: ContextDep, caller: Viewer, accept: AcceptHeader = None
) -> StreamingResponse:
    """WADO-RS: one produced instance, as stored."""
    return _retrieve(ctx, caller, accept, study, series, sop)


@router.get("/studies/{study}/metadata", **SEARCH)  # type: ignore[arg-type]
def study_metadata(study: str, ctx: ContextDep, caller: Viewer, accept: AcceptHeader = None) -> JSONResponse:
    """WADO-RS: the headers of a study's produced instances (DICOM JSON, no pixel data)."""
    return _metadata(ctx, caller, accept, study, None, None)


@router.get("/studies/{study}/series/{series}/metadata", **SEARCH)  # type: ignore[arg-type]
def series_metadata(
    study: str, series: str, ctx: ContextDep, caller: Viewer, accept: AcceptHeader = None
) -> JSONResponse:
    """WADO-RS: the headers of a produced series' instances."""
    return _metadata(ctx, caller, accept, study, series, None)


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata", **SEARCH)  # type: ignore[arg-type]
def instance_metadata(
    study: str, series: str, sop: str, ctx: ContextDep, caller: Viewer, accept: AcceptHeader = None
) -> JSONResponse:
    """WADO-RS: the header of one produced instance."""
    return _metadata(ctx, caller, accept, study, series, sop)
