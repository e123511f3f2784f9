"""Fixtures of the reliability tests: the tiny model and real CT of the service tests, and one `lrc serve`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings

# The service tests' session fixtures (a tiny model trained on real CT in seconds), shared, not copied.
from tests.service.harness import ADMIN_KEY, FAST, lrc_serve, service_env

STARTER = "starter"
UPLOAD_LIMIT = 8 * 1024**2  # bytes; the size cases send more


def pytest_configure(config: pytest.Config) -> None:
    """kombu 5.7's SQLAlchemy transport (the embedded broker) declares ``lazy="noload"`` relations,
    which SQLAlchemy 2.1 deprecates; not ours to fix (as in ``tests/service/fixtures.py``)."""
    config.addinivalue_line(
        "filterwarnings", "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    )


@dataclass
class Served:
    """A running ``lrc serve``: its process, an admin client, its data folder and log."""

    process: subprocess.Popen[bytes]
    client: httpx.Client
    data_dir: Path
    log: Path

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's public view."""
        response = self.client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(self, job_id: str, until: Any, timeout: float = 120, every: float = 0.05) -> dict[str, Any]:
        """Poll the job until ``until(job)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            assert time.monotonic() < deadline, f"job {job_id} is {job} after {timeout} s; see {self.log}"
            time.sleep(every)

    def workers_ready(self) -> set[str]:
        """Names of the workers with a recent heartbeat."""
        try:
            ready = self.client.get("/readyz")
        except httpx.TransportError:
            return set()
        return {w.split("@")[0] for w in ready.json()["checks"].get("workers", [])}


@pytest.fixture(scope="session")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``lrc serve`` (embedded: uvicorn and its two workers) with the tiny model as production starter."""
    root = tmp_path_factory.mktemp("serve")
    settings = Settings(data_dir=root / "data", bootstrap_admin_key=ADMIN_KEY, max_upload_bytes=UPLOAD_LIMIT, **FAST)
    env = service_env(settings)
    env.update(LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, LRC_STARTER_MODEL_DIR=str(tiny_model), LRC_STARTER_MODEL_NAME=STARTER)
    # Two cores shared with other jobs: torch's default of one thread per core makes each worker spin against
    # the other and the API (a training step about 10x slower than with one thread).
    env.update(OMP_NUM_THREADS="1")
    log = root / "serve.log"
    with lrc_serve(settings.data_dir, env, log) as (process, client):
        yield Served(process, client, settings.data_dir, log)


@pytest.fixture(scope="session")
def series_id(served: Served, ct_nifti: tuple[Path, Path]) -> str:
    """The small real CT, stored as a study."""
    image = ct_nifti[0]
    response = served.client.post("/v1/studies", files=[("files", (image.name, image.read_bytes(), "x"))])
    assert response.status_code == 201, response.text
    return str(response.json()["series"][0]["id"])
