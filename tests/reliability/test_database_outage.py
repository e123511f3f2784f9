"""PostgreSQL stopped under a running service (API and a real worker): 503 problem+json, then recovery.

The cluster is the test's own (``servers.PgCluster``), stopped with ``pg_ctl -m fast`` (open
connections are cut, as in a crash or failover) and started again on the same port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.services.model_versions import register_directory
from core.records.projects import DEFAULT
from core.settings import Settings
from tests.reliability.servers import PgCluster
from tests.service.fixtures import MODEL
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    server = PgCluster()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def _requests(client: httpx.Client, study_id: str, series_id: str, ct: Path) -> dict[str, httpx.Response]:
    """One request of each kind: authentication, reads, a job submission, an upload."""
    return {
        "list jobs": client.get("/v1/jobs"),
        "get study": client.get(f"/v1/studies/{study_id}"),
        "list models": client.get("/v1/models"),
        "segment": client.post("/v1/segmentations", json={"series_id": series_id}),
        "upload": client.post("/v1/studies", files=[("files", (ct.name, ct.read_bytes(), "x"))]),
    }


def test_requests_fail_with_503_while_the_database_is_down_and_recover(
    cluster: PgCluster, tiny_model: Path, ct_nifti: tuple[Path, Path], tmp_path: Path
):
    settings = Settings(data_dir=tmp_path / "data", database_url=cluster.url, bootstrap_admin_key=ADMIN_KEY, **FAST)
    service: Service
    with running_service(settings, (("all", "infer,io,train"),), tmp_path) as service, service.client() as client:
        register_directory(service.ctx, MODEL, tiny_model, DEFAULT, status="production")
        ct = ct_nifti[0]
        upload = client.post("/v1/studies", files=[("files", (ct.name, ct.read_bytes(), "x"))])
        assert upload.status_code == 201, upload.text
        study_id, series_id = upload.json()["id"], upload.json()["series"][0]["id"]
        assert client.get("/v1/jobs").status_code == 200  # pooled connections exist now

        cluster.stop()
        down = _requests(client, study_id, series_id, ct)
        ready_down = client.get("/readyz")
        alive_down = client.get("/healthz")

        cluster.start()
        # No wait, no restart: the pool's pre-ping replaces the connections the shutdown cut.
        up = _requests(client, study_id, series_id, ct)
        job = service.wait_job(up["segment"].json()["job_id"], timeout=120)

    for name, response in down.items():
        assert response.status_code == 503, (name, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json", name
        assert "database cannot be reached" in response.json()["detail"], name
        assert response.headers["retry-after"]
        assert "SELECT" not in response.text  # no SQL
        assert "postgres" not in response.text  # no server detail
    assert ready_down.status_code == 503
    assert alive_down.status_code == 200
    for name, response in up.items():
        assert response.status_code in (200, 201, 202), (name, response.status_code, response.text)
    assert job["state"] == "succeeded", job  # the worker lived through the outage and took the new job
