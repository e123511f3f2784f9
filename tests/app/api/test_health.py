"""/readyz says which dependency is down (503), without a worker or broker running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from app.main import create_app
from core.settings import Settings
from tests.service.harness import free_port


def test_readyz_reports_an_unreachable_broker(tmp_path: Path):
    settings = Settings(
        data_dir=tmp_path, broker_url=f"redis://127.0.0.1:{free_port()}/0", starter_model_dir=tmp_path / "none"
    )
    app = create_app(settings)

    async def probe() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lrc") as client:
            return await client.get("/readyz")

    response = asyncio.run(probe())
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["storage"] == "ok"
    assert checks["broker"].startswith("error")
    app.state.context.db.engine.dispose()
