"""``/v1/jobs``: state and progress, a server-sent event stream, cancellation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import ContextDep, Principal, Submitter, Viewer
from app.api.schemas import JobOut
from app.services import jobs
from core.context import Context
from core.errors import Unauthenticated
from core.records.jobs import FINAL
from core.records.keys import key_active

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
POLL_S = 0.5
KEEPALIVE_S = 15.0
KEY_CHECK_S = 3.0  # a stream outlives its key by at most this long
REVOKED = json.dumps(
    {"type": "urn:lrc:problem:unauthenticated", "title": Unauthenticated.title, "status": 401,
     "detail": "the API key is unknown or revoked"}
)  # fmt: skip


@router.get("")
def list_jobs(
    ctx: ContextDep,
    caller: Viewer,
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    kind: Literal["segment", "finetune", "pretrain", "export"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # past 2**63 the database raises
) -> list[JobOut]:
    """The project's jobs, newest first; filter by ``state`` and ``kind``."""
    return [JobOut(**jobs.view(job)) for job in jobs.find(ctx, caller.project, state, kind, limit, offset)]


@router.get("/{job_id}")
def get_job(job_id: str, ctx: ContextDep, caller: Viewer) -> JobOut:
    """State, progress (fraction, stage, metrics so far), result links, error."""
    return JobOut(**jobs.view(jobs.get(ctx, job_id, caller.project)))


@router.get("/{job_id}/events", response_class=StreamingResponse)
def job_events(job_id: str, ctx: ContextDep, caller: Viewer) -> StreamingResponse:
    """Server-sent events: one ``job`` event per change, until the job has finished, or until the key is
    revoked (checked every few seconds; the stream then ends with an ``error`` event, a problem document)."""
    jobs.get(ctx, job_id, caller.project)  # 404 before the stream starts
    return StreamingResponse(
        _events(ctx, job_id, caller), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _still_valid(ctx: Context, key_id: str) -> bool:
    with ctx.db.session() as session:
        return key_active(session, key_id)


async def _events(ctx: Context, job_id: str, caller: Principal) -> AsyncIterator[str]:
    last = None
    idle = 0.0
    checked = time.monotonic()
    while True:
        if time.monotonic() - checked >= KEY_CHECK_S:
            if not await run_in_threadpool(_still_valid, ctx, caller.key_id):
                yield f"event: error\ndata: {REVOKED}\n\n"
                return
            checked = time.monotonic()
        view = await run_in_threadpool(lambda: jobs.view(jobs.get(ctx, job_id, caller.project)))
        data = json.dumps(view)
        if data != last:
            last, idle = data, 0.0
            yield f"event: job\nid: {view['state']}-{view['progress']['fraction']:.4f}\ndata: {data}\n\n"
        elif idle >= KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
        if view["state"] in FINAL:
            return
        await asyncio.sleep(POLL_S)
        idle += POLL_S


@router.delete("/{job_id}")
def cancel_job(job_id: str, ctx: ContextDep, caller: Submitter) -> JobOut:
    """Cancel a queued or running job (a running one stops at its next progress report)."""
    return JobOut(**jobs.view(jobs.cancel(ctx, job_id, caller.project)))
