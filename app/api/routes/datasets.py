"""``/v1/datasets``: labelled cases, label geometry checked on arrival."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import ContextDep, Submitter, Viewer
from app.api.uploads import receive
from app.services import datasets, studies
from core.errors import InvalidRequest
from core.storage import staging_folder

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

DATASET_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "labels", "cases"],
                    "properties": {
                        "name": {"type": "string"},
                        "labels": {"type": "string", "description": 'JSON: {"5": "liver", "1": "spleen"}'},
                        "cases": {
                            "type": "string",
                            "description": 'JSON: [{"image": "ct.nii.gz" or {"series_id": ID}, "label": "seg.nii.gz"}]',
                        },
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                }
            }
        },
    }
}


@router.post("", status_code=status.HTTP_201_CREATED, openapi_extra=DATASET_BODY)
async def create_dataset(request: Request, ctx: ContextDep, caller: Submitter) -> dict[str, Any]:
    """Images (files or stored series) and label maps (NIfTI or DICOM SEG) with a label table."""
    with staging_folder(ctx.settings.work_dir) as folder:
        received = await receive(request, folder, ctx.settings.max_upload_bytes)
        missing = [k for k in ("name", "labels", "cases") if not received.fields.get(k)]
        if missing:
            raise InvalidRequest(f"form fields missing: {', '.join(missing)}")
        name = datasets.parse_name(received.fields["name"])
        labels = datasets.parse_labels(received.fields["labels"])
        cases = datasets.parse_cases(received.fields["cases"], ctx.settings.max_dataset_cases)
        files = {f.name: studies.Upload(f.name, f.path, f.sha256) for f in received.files.get("files", [])}
        dataset = await run_in_threadpool(
            datasets.create, ctx, name, labels, cases, files, folder, caller.key_id, caller.project
        )
    return datasets.get(ctx, dataset.id, caller.project)


@router.get("")
def list_datasets(
    ctx: ContextDep,
    caller: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[dict[str, Any]]:
    """The project's datasets, newest first."""
    return datasets.find(ctx, caller.project, limit, offset)


@router.get("/{dataset_id}")
def get_dataset(dataset_id: str, ctx: ContextDep, caller: Viewer) -> dict[str, Any]:
    """One dataset."""
    return datasets.get(ctx, dataset_id, caller.project)
