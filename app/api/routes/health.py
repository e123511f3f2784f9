"""``/healthz`` (the process is up), ``/readyz`` (database, broker, storage), ``/metrics``."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import ContextDep
from app.records.jobs import live_workers
from app.records.models import now

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the API process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: ContextDep) -> JSONResponse:
    """Readiness: database, broker and blob storage reachable (503 otherwise); workers seen lately."""
    checks: dict[str, Any] = {}
    try:
        ctx.db.ping()
        checks["database"] = "ok"
        with ctx.db.session() as session:
            recent = now() - dt.timedelta(seconds=ctx.settings.stale_after_s)
            checks["workers"] = sorted(w.hostname for w in live_workers(session, recent))
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {type(exc).__name__}: {exc}"
    try:
        ctx.queue.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}: {exc}"
    try:
        probe = ctx.store.tmp / f"ready-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        os.unlink(probe)
        checks["storage"] = "ok"
    except OSError as exc:
        checks["storage"] = f"error: {exc}"
    ready = all(checks[k] == "ok" for k in ("database", "broker", "storage"))
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this API process and job counts from the database."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
