"""Scaled mode: Redis as broker and PostgreSQL for records, with a real worker process.

The servers are used where they run (127.0.0.1:6379 and :5432, as on the project's machines and in
CI); otherwise ``redis-server`` is started on a free port, and PostgreSQL in a temporary cluster
(as the ``postgres`` user when the tests run as root). Without the binaries the tests fail and say
what to install (``scripts/test.sh`` installs them): CI must never skip them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services.model_versions import register_directory
from core.records.projects import DEFAULT
from core.settings import Settings
from tests.service.fixtures import MODEL
from tests.service.harness import ADMIN_KEY, FAST, Service, free_port, running_service
from tests.service.helpers import multipart, series_with_uids
from tests.service.postgres import postgres_database


def _redis_alive(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    url = "redis://127.0.0.1:6379/9"
    if _redis_alive(url):
        import redis

        redis.Redis.from_url(url).flushdb()  # db 9 is the tests' own
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no Redis at 127.0.0.1:6379 and no redis-server binary to start one (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not _redis_alive(url):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh database for this module, dropped afterwards."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def scaled(redis_url: str, postgres_url: str, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("scaled")
    settings = Settings(
        data_dir=root / "data",
        database_url=postgres_url,
        broker_url=redis_url,
        bootstrap_admin_key=ADMIN_KEY,
        **FAST,
    )
    with running_service(settings, (("all", "infer,io,train"),), root) as running:
        register_directory(running.ctx, MODEL, tiny_model, DEFAULT, status="production")
        yield running


def test_upload_segment_download_on_redis_and_postgres(scaled: Service, shared_data: Path, tmp_path: Path):
    from lrc.io import read_volume
    from lrc.io.seg import read_seg

    assert scaled.ctx.db.engine.dialect.name == "postgresql"
    paths = series_with_uids(shared_data, tmp_path / "series")
    with scaled.client("submitter") as client:
        upload = client.post("/v1/studies", files=multipart(paths))
        assert upload.status_code == 201, upload.text
        series_id = upload.json()["series"][0]["id"]
        accepted = client.post("/v1/segmentations", json={"series_id": series_id}).json()
        job = scaled.wait_job(accepted["job_id"])
        assert job["state"] == "succeeded", job
        deadline = time.monotonic() + 60
        while (
            response := client.get(f"/v1/segmentations/{accepted['id']}/result?format=dicom-seg")
        ).status_code == 409:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert response.status_code == 200, response.text
    (tmp_path / "seg.dcm").write_bytes(response.content)
    masks = read_seg(tmp_path / "seg.dcm", read_volume(paths))
    assert {masks.table[v].name for v in masks.table} <= {"liver", "spleen"}
    with scaled.client("none") as client:
        assert client.get("/readyz").json()["checks"]["broker"] == "ok"


def test_a_failing_job_says_why(scaled: Service):
    from app.services import jobs

    job = jobs.submit(scaled.ctx, "export", {"segmentation_id": "gone"}, None, DEFAULT)
    failed = scaled.wait_job(job.id)
    assert failed["state"] == "failed"
    assert "segmentation gone has no label map" in failed["error"]
    with scaled.client("submitter") as client:
        late = client.delete(f"/v1/jobs/{job.id}")
    assert late.status_code == 409
    assert "already failed" in late.json()["detail"]
