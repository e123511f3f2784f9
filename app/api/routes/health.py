"""``/healthz`` (the process is up), ``/readyz`` (database, broker, storage, a worker per queue), ``/metrics``."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import ContextDep
from core.celery_app import QUEUES
from core.records.jobs import live_workers
from core.records.tables import now

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the API process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: ContextDep) -> JSONResponse:
    """Readiness: database, broker and blob storage reachable, and a worker seen lately for each queue
    (503 otherwise: a job of a queue no worker consumes would wait for ever).

    Anyone may ask, so a failed check answers a fixed reason; the error itself (server names, ports,
    paths, driver messages) goes to the log only.
    """
    checks: dict[str, Any] = {"queues": {queue: "no worker" for queue in QUEUES}}
    try:
        ctx.db.ping()
        checks["database"] = "ok"
        with ctx.db.session() as session:
            recent = now() - dt.timedelta(seconds=ctx.settings.stale_after_s)
            workers = live_workers(session, recent)
        checks["workers"] = sorted(w.hostname for w in workers)
        served = {queue for w in workers for queue in w.queues.split(",")}
        checks["queues"] = {queue: "ok" if queue in served else "no worker" for queue in QUEUES}
    except Exception as exc:  # any failure means not ready; say which, not why
        checks["database"] = _failed("database", "error: database unavailable", exc)
    try:
        ctx.queue.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = _failed("broker", "error: broker unavailable", exc)
    try:
        probe = ctx.store.tmp / f"ready-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        os.unlink(probe)
        checks["storage"] = "ok"
    except OSError as exc:
        reason = "error: storage full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "error: storage unavailable"
        checks["storage"] = _failed("storage", reason, exc)
    ready = all(checks[k] == "ok" for k in ("database", "broker", "storage"))
    ready = ready and all(state == "ok" for state in checks["queues"].values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


def _failed(component: str, reason: str, exc: BaseException) -> str:
    """Log why a readiness check failed; return the public ``reason``."""
    log.warning("readiness: %s check failed: %s: %s", component, type(exc).__name__, exc)
    return reason


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this API process and job counts from the database."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
