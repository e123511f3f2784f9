"""Broker and service restarts with jobs queued and running: no accepted job is lost.

Scaled mode as deployed: ``lrc serve`` (uvicorn and its two Celery workers) on a Redis broker the
test starts itself and PostgreSQL records. Three faults, each with one job running (the 112-slice
real CT) and more queued behind it:

1. Redis restarted (SIGTERM; it keeps its queue in an append-only file, ``appendfsync always``).
2. Redis crashed and back empty (SIGKILL, its files deleted: what a Redis without persistence
   does); one more job is accepted while it is down. The database holds every accepted job; the
   workers see the new Redis (its run id) when they reconnect and send the queued jobs again at
   once, not after ``LRC_REDISPATCH_QUEUED_AFTER_S`` (which keeps its default, 900 s, here).
3. ``lrc serve`` itself killed with SIGKILL (API and workers at once), then started again.

After each: every job ``succeeded`` with exactly one segmentation, readable, of the full shape.
Embedded mode (SQLite records, the on-disk broker) killed the same way: the jobs were queued in its
broker file before the crash, some fetched by the worker. (Embedded mode stopped gracefully, with
jobs queued while it was down: ``tests/service/test_serve.py``.)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from lrc.io import read_nifti
from tests.reliability.conftest import STARTER
from tests.reliability.servers import RedisServer
from tests.reliability.test_worker_kill import assert_no_debris
from tests.service.harness import ADMIN_KEY, FAST, FINAL, lrc_serve, service_env
from tests.service.test_scaled import postgres_url

__all__ = ["postgres_url"]
logger = logging.getLogger(__name__)
# After Redis came back empty, the worker may sit idle at most this long before the next queued job starts
# (Celery's reconnection back-off, 2 s then 4 s, and the re-send), and the jobs lost with Redis are all done
# this soon (the four segmentations of the 112-slice CT with the tiny model took ~3 s here).
IDLE_AFTER_BROKER_BACK_S = 10.0
DONE_AFTER_BROKER_BACK_S = 30.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _env(data_dir: Path, redis: RedisServer, postgres_url: str, tiny_model: Path) -> dict[str, str]:
    # The recovery timings of production (no fault here waits for a stale heartbeat): the workers'
    # sweeper wakes every 10 s, so a quicker re-send after Redis came back is the reconnection's doing.
    timings = {"heartbeat_s": 10.0, "stale_after_s": 60.0, "sweep_interval_s": 30.0}
    settings = Settings(
        data_dir=data_dir,
        database_url=postgres_url,
        broker_url=redis.url,
        bootstrap_admin_key=ADMIN_KEY,
        **{**FAST, **timings},
    )
    env = service_env(settings)
    env.update(LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, LRC_STARTER_MODEL_DIR=str(tiny_model), LRC_STARTER_MODEL_NAME=STARTER)
    env.update(OMP_NUM_THREADS="1")  # LRC_REDISPATCH_QUEUED_AFTER_S keeps its default (900 s)
    return env


def _submit(client: httpx.Client, series_id: str, count: int) -> list[dict[str, Any]]:
    accepted = []
    for _ in range(count):
        response = client.post("/v1/segmentations", json={"series_id": series_id, "model": STARTER})
        assert response.status_code == 202, response.text
        accepted.append(response.json())
    return accepted


def _wait(client: httpx.Client, job_id: str, until: Any, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
            if until(job):
                return job
        except httpx.TransportError:
            pass  # the service is being restarted
        assert time.monotonic() < deadline, f"job {job_id} not done in {timeout} s"
        time.sleep(0.2)


def _running(client: httpx.Client, accepted: list[dict[str, Any]]) -> None:
    """Wait until the first job runs; the others are still queued behind it (one infer worker, -c 1)."""
    job = _wait(client, accepted[0]["job_id"], lambda j: j["state"] != "queued")
    assert job["state"] == "running", job
    assert job["progress"]["stage"] != "storing", job


def _check_all_done(
    client: httpx.Client, accepted: list[dict[str, Any]], log: Path, timeout: float = 180
) -> list[dict[str, Any]]:
    """Every job succeeded with its one readable, whole segmentation; returns the jobs."""
    jobs = []
    for item in accepted:
        job = _wait(client, item["job_id"], lambda j: j["state"] in FINAL, timeout)
        assert job["state"] == "succeeded", (job, log.read_text()[-3000:])
        assert job["result"]["segmentation_id"] == item["id"]
        segmentation = client.get(f"/v1/segmentations/{item['id']}").json()
        assert segmentation["formats"] == ["nifti"], segmentation
        jobs.append(job)
    result = client.get(f"/v1/segmentations/{accepted[0]['id']}/result", params={"format": "nifti"})
    assert result.status_code == 200
    return jobs


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _idle_after(back: dt.datetime, jobs: list[dict[str, Any]]) -> list[float]:
    """Seconds the (single) infer worker waited before each job, counted from when it could have started:
    when the broker was back or the job before it finished, whichever is later."""
    ordered = sorted(jobs, key=lambda j: _time(j["started_at"]))
    idle, free = [], back
    for job in ordered:
        if _time(job["started_at"]) > back:  # the job that ran through the outage started before it
            idle.append((_time(job["started_at"]) - free).total_seconds())
        free = max(free, _time(job["finished_at"]))
    return idle


def test_no_job_is_lost_across_broker_and_service_restarts(
    redis: RedisServer, postgres_url: str, tiny_model: Path, shared_data: Path, tmp_path: Path
):
    data_dir = tmp_path / "data"
    env = _env(data_dir, redis, postgres_url, tiny_model)
    log = tmp_path / "serve.log"
    image = shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz"  # 112 slices
    with lrc_serve(data_dir, env, log) as (process, client):
        upload = client.post("/v1/studies", files=[("files", (image.name, image.read_bytes(), "x"))])
        assert upload.status_code == 201, upload.text
        series_id = upload.json()["series"][0]["id"]

        # 1. Redis restarted, keeping its append-only file.
        first = _submit(client, series_id, 3)
        _running(client, first)
        redis.stop()
        redis.start()
        restarted = [job["attempts"] for job in _check_all_done(client, first, log)]

        # 2. Redis crashed and came back empty; one job accepted while it was down.
        second = _submit(client, series_id, 3)
        _running(client, second)
        redis.stop(hard=True)
        for leftover in redis.folder.iterdir():
            if leftover.name != "log":
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        second += _submit(client, series_id, 1)
        redis.start()
        back = dt.datetime.now(dt.UTC)
        jobs = _check_all_done(client, second, log, timeout=DONE_AFTER_BROKER_BACK_S + 30)
        emptied = [job["attempts"] for job in jobs]
        seconds = (max(_time(job["finished_at"]) for job in jobs) - back).total_seconds()
        idle = _idle_after(back, jobs)
        logger.info("Redis back empty: done in %.1f s; idle before each: %s s", seconds, [round(i, 1) for i in idle])
        assert len(idle) >= 3, (idle, jobs)  # the three jobs queued when Redis crashed and the one sent meanwhile
        assert max(idle) < IDLE_AFTER_BROKER_BACK_S, (idle, jobs)
        assert seconds < DONE_AFTER_BROKER_BACK_S, (back, jobs)
        assert "broker connection re-established" in log.read_text()
        assert "broker is a new Redis server (run id changed): queued jobs sent again" in log.read_text()

        # 3. lrc serve killed outright: API and both workers.
        third = _submit(client, series_id, 3)
        _running(client, third)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    with lrc_serve(data_dir, env, log) as (_, client):
        crashed = [job["attempts"] for job in _check_all_done(client, third, log)]
        labels = tmp_path / "check.nii.gz"
        labels.write_bytes(client.get(f"/v1/segmentations/{third[0]['id']}/result", params={"format": "nifti"}).content)
    assert read_nifti(labels).shape == (122, 101, 112)
    assert max(restarted + emptied) <= 2, (restarted, emptied)
    assert crashed[0] == 2, crashed  # the running job's first attempt died with its worker
    assert_no_debris(data_dir)


def test_embedded_serve_killed_with_jobs_queued_and_running(tiny_model: Path, shared_data: Path, tmp_path: Path):
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, bootstrap_admin_key=ADMIN_KEY, **FAST)
    env = service_env(settings)
    env.update(LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, LRC_STARTER_MODEL_DIR=str(tiny_model), LRC_STARTER_MODEL_NAME=STARTER)
    env.update(OMP_NUM_THREADS="1")
    log = tmp_path / "serve.log"
    image = shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz"
    with lrc_serve(data_dir, env, log) as (process, client):
        upload = client.post("/v1/studies", files=[("files", (image.name, image.read_bytes(), "x"))])
        assert upload.status_code == 201, upload.text
        accepted = _submit(client, upload.json()["series"][0]["id"], 3)
        _running(client, accepted)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    with lrc_serve(data_dir, env, log) as (_, client):
        attempts = [job["attempts"] for job in _check_all_done(client, accepted, log)]
    assert attempts[0] == 2, attempts
    assert_no_debris(data_dir)
