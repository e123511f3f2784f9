"""``/v1/segmentations``: create (a job), get, download the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import FileResponse

from app.api.deps import ContextDep, Submitter, Viewer
from app.api.schemas import IDEMPOTENCY_KEY, Accepted, SegmentationIn, SegmentationOut
from app.services import segmentations
from lrc.writers import NIFTI, writer_names

router = APIRouter(prefix="/v1/segmentations", tags=["segmentations"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "the Idempotency-Key was used for another request (problem+json)"}},
)
def create_segmentation(
    body: SegmentationIn,
    ctx: ContextDep,
    caller: Submitter,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
) -> Accepted:
    """Segment a stored series with a model (default: the production model); once per ``Idempotency-Key``."""
    seg, job = segmentations.create(
        ctx, body.series_id, body.model, caller.key_id, caller.project, request_key=idempotency_key, tiles=body.tiles
    )
    return Accepted(
        id=seg.id, job_id=job.id, links={"job": f"/v1/jobs/{job.id}", "self": f"/v1/segmentations/{seg.id}"}
    )


@router.get("/{segmentation_id}")
def get_segmentation(segmentation_id: str, ctx: ContextDep, caller: Viewer) -> SegmentationOut:
    """A segmentation: its job, model and the formats ready to download."""
    return SegmentationOut(**segmentations.view(ctx, segmentation_id, caller.project))


@router.get(
    "/{segmentation_id}/result",
    response_class=FileResponse,
    responses={409: {"description": "not ready yet (problem+json)"}},
)
def get_result(
    segmentation_id: str,
    ctx: ContextDep,
    caller: Viewer,
    fmt: Annotated[str, Query(alias="format", pattern=f"^({'|'.join(writer_names())})$")] = NIFTI.name,
) -> FileResponse:
    """The label map as NIfTI, DICOM SEG or RTSTRUCT (409 until the job has produced it)."""
    found = segmentations.result(ctx, segmentation_id, fmt, caller.project)
    return FileResponse(found.path, media_type=found.media_type, filename=found.filename)
