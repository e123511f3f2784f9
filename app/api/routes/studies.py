"""``/v1/studies``: upload, list, get, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import ContextDep, Submitter, Viewer
from app.api.schemas import SeriesOut, StudyOut
from app.api.uploads import receive
from app.services import studies
from app.services.jobs import utc
from core.records.studies import series_summary
from core.records.tables import Study
from core.storage import staging_folder

router = APIRouter(prefix="/v1/studies", tags=["studies"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "DICOM files, zip archives of DICOM, NIfTI files",
                        }
                    },
                }
            }
        },
    }
}


def study_out(study: Study, duplicate: bool = False) -> StudyOut:
    """The response body of a study."""
    date = study.study_date
    return StudyOut(
        id=study.id,
        study_instance_uid=study.study_instance_uid,
        study_date=f"{date[:4]}-{date[4:6]}-{date[6:]}" if date else "",
        description=study.study_description,
        modalities=sorted({s.modality for s in study.series}),
        slices=sum(int(s.shape[2]) for s in study.series),
        created_at=utc(study.created_at),
        series=[SeriesOut(**series_summary(s)) for s in study.series],
        notes=study.notes,
        duplicate=duplicate,
    )


@router.post("", status_code=status.HTTP_201_CREATED, openapi_extra=UPLOAD_BODY)
async def upload_study(request: Request, response: Response, ctx: ContextDep, caller: Submitter) -> StudyOut:
    """Upload DICOM files, zips or NIfTI files (field ``files``); 200 with the old study for a repeat."""
    with staging_folder(ctx.settings.work_dir) as folder:
        received = await receive(request, folder, ctx.settings.max_upload_bytes)
        uploads = [studies.Upload(f.name, f.path, f.sha256) for f in received.files.get("files", [])]
        study, created = await run_in_threadpool(studies.ingest, ctx, uploads, folder, caller.key_id, caller.project)
    if not created:
        response.status_code = status.HTTP_200_OK
    return study_out(study, duplicate=not created)


@router.get("")
def list_studies(
    ctx: ContextDep,
    caller: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # past 2**63 the database raises
) -> list[StudyOut]:
    """The project's studies, newest first."""
    return [study_out(s) for s in studies.find(ctx, caller.project, limit, offset)]


@router.get("/{study_id}")
def get_study(study_id: str, ctx: ContextDep, caller: Viewer) -> StudyOut:
    """One study and its series."""
    return study_out(studies.get(ctx, study_id, caller.project))


@router.delete("/{study_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_study(study_id: str, ctx: ContextDep, caller: Submitter) -> None:
    """Delete a study, its series, their segmentations and files nothing else uses."""
    studies.delete(ctx, study_id, caller.project)
