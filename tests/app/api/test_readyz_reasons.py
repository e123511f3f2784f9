"""/readyz (no key needed) names the component that is down, never the error: that goes to the log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from app.api.deps import get_context
from app.main import create_app
from core.context import Context
from core.queue import JobQueue
from core.records.db import Database
from core.records.jobs import beat
from core.settings import Settings
from core.storage import BlobStore
from tests.service.harness import free_port


def test_readyz_answers_fixed_reasons_and_logs_the_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    app = create_app(Settings(data_dir=tmp_path / "up", starter_model_dir=tmp_path / "none"))
    # Everything down at once: a PostgreSQL and a Redis nobody listens on, blob storage whose
    # temporary folder is a file. Their errors carry a server, a port, a user, a database and a path.
    db_port, broker_port = free_port(), free_port()
    down = Settings(
        data_dir=tmp_path / "down",
        database_url=f"postgresql://dbuser-x7:pw@127.0.0.1:{db_port}/records-x7",
        broker_url=f"redis://127.0.0.1:{broker_port}/0",
        starter_model_dir=tmp_path / "none",
    )
    store = BlobStore(tmp_path / "down" / "blobs")
    store.tmp.rmdir()
    store.tmp.write_bytes(b"not a folder")
    broken = Context(down, Database(down.database_url), store, JobQueue(down))
    app.dependency_overrides[get_context] = lambda: broken

    async def probe() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lrc") as client:
            return await client.get("/readyz")

    with caplog.at_level(logging.WARNING, logger="app.api.routes.health"):
        response = asyncio.run(probe())
    app.state.context.db.engine.dispose()

    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {
            "database": "error: database unavailable",
            "broker": "error: broker unavailable",
            "storage": "error: storage unavailable",
            "queues": {"infer": "no worker", "train": "no worker", "io": "no worker"},
        },
    }
    for detail in (str(db_port), str(broker_port), "dbuser-x7", "records-x7", "127.0.0.1", str(tmp_path), "Errno"):
        assert detail not in response.text, detail
    logged = caplog.text
    for detail in (str(db_port), str(broker_port), str(store.tmp)):
        assert detail in logged, (detail, logged)
    assert "database check failed" in logged
    assert "broker check failed" in logged
    assert "storage check failed" in logged


def test_not_ready_until_a_worker_was_seen_for_each_queue(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, starter_model_dir=tmp_path / "none")
    app = create_app(settings)
    ctx = app.state.context

    async def probe() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lrc") as client:
            return await client.get("/readyz")

    answers = []
    for hostname, queues in (("infer@a", "infer,io"), ("train@a", "train")):
        with ctx.db.session() as session:
            beat(session, hostname, queues)
        answers.append(asyncio.run(probe()))
    ctx.db.engine.dispose()
    first, second = (a.json() for a in answers)
    assert (answers[0].status_code, first["status"]) == (503, "not ready")
    assert first["checks"]["queues"] == {"infer": "ok", "train": "no worker", "io": "ok"}
    assert (first["checks"]["database"], first["checks"]["broker"], first["checks"]["storage"]) == ("ok",) * 3
    assert (answers[1].status_code, second["checks"]["queues"]) == (200, {"infer": "ok", "train": "ok", "io": "ok"})
