"""``/v1/finetunes`` and ``/v1/pretrains``: training jobs that register a candidate model version."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import ContextDep, Submitter
from app.api.schemas import Accepted, FinetuneIn, PretrainIn
from app.services import training

router = APIRouter(prefix="/v1", tags=["training"])


@router.post("/finetunes", status_code=status.HTTP_202_ACCEPTED)
def create_finetune(body: FinetuneIn, ctx: ContextDep, caller: Submitter) -> Accepted:
    """Fine-tune ``base_model`` (or from scratch) on a dataset; the job registers a candidate version."""
    options = body.options.model_dump(exclude_unset=True)
    job = training.finetune(ctx, body.dataset_id, body.base_model, body.name, options, caller.key_id, caller.project)
    return Accepted(job_id=job.id, links={"job": f"/v1/jobs/{job.id}"})


@router.post("/pretrains", status_code=status.HTTP_202_ACCEPTED)
def create_pretrain(body: PretrainIn, ctx: ContextDep, caller: Submitter) -> Accepted:
    """Self-supervised pre-training on stored scans; the job registers a ``pretrained`` version."""
    options = body.options.model_dump(exclude_unset=True)
    job = training.pretrain(
        ctx, body.series_ids, body.study_ids, body.method, body.name, options, caller.key_id, caller.project
    )
    return Accepted(job_id=job.id, links={"job": f"/v1/jobs/{job.id}"})
