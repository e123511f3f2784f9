"""The FastAPI application: ``uvicorn --factory app.main:create_app``.

On start: tables created, the bootstrap admin key (``LRC_BOOTSTRAP_ADMIN_KEY``) and the starter
model registered when present. While it serves, a thread sweeps leftovers of killed processes and
stopped jobs (:mod:`app.services.cleanup`). No torch here: work is queued by task name.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from kombu.exceptions import OperationalError

from app.api import problems
from app.api.router import api_router
from app.metrics import Metrics, MetricsMiddleware
from app.security_headers import SecurityHeadersMiddleware
from app.services.cleanup import Sweeper
from app.services.dicomweb_results import index_missing
from app.services.model_versions import register_starter
from app.web import docs
from core.context import Context, build_context
from core.records.keys import ensure_bootstrap_admin
from core.settings import Settings, get_settings
from lrc import log_privacy

log = logging.getLogger(__name__)


def start(ctx: Context) -> None:
    """First-start duties (idempotent): the bootstrap admin key, the starter model, the DICOMweb index."""
    token = ctx.settings.bootstrap_admin_key
    if token:
        with ctx.db.session() as session:
            if ensure_bootstrap_admin(session, token):
                log.warning("bootstrap admin key created from LRC_BOOTSTRAP_ADMIN_KEY")
    register_starter(ctx)
    if indexed := index_missing(ctx):  # DICOM results exported before the index existed
        log.info("indexed %d exported DICOM instances for DICOMweb", indexed)
    try:
        ctx.queue.prepare()
    except (OperationalError, OSError) as exc:
        log.warning("broker not reachable at start (%s); jobs wait in the database until it is", exc)


def create_app(settings: Settings | None = None, context: Context | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    ctx = context or build_context(settings or get_settings())
    log_privacy.install(ctx.settings.bootstrap_admin_key)
    start(ctx)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = Sweeper(ctx)
        sweeper.start()
        try:
            yield
        finally:
            sweeper.stop()
            ctx.db.engine.dispose()

    app = FastAPI(
        title="LRC segmentation service",
        version="0.1.0",
        description="Upload scans, segment them, fine-tune and pre-train models, manage model versions.",
        lifespan=lifespan,
        docs_url=None,  # served from local files instead of a CDN (app.web.docs)
        redoc_url=None,
    )
    app.state.context = ctx
    app.state.metrics = Metrics(ctx.db)
    problems.install(app)
    app.include_router(api_router)
    app.include_router(docs.router)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
