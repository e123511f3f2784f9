"""A training job cancelled while its worker loads data stops within seconds (real API and worker processes).

Pre-training prepares super-pixels for every slice of every series before its first step: about 5 s
per copy of the 112-slice CT on a 256 canvas, so 6 copies take half a minute or more. Cancelled while
it reads or prepares, the job must free its worker (a probe job queued behind it is claimed) within
seconds, end ``cancelled``, and leave no work folder once the sweep of leftovers has run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from app.services import cleanup
from tests.service.harness import Service
from tests.service.helpers import distinct_cts, multipart

log = logging.getLogger(__name__)
SERIES = 6
IDLE_WITHIN_S = 8.0  # on 2 shared cores; measured ~1-2 s (bench/RELIABILITY.md), ~30 s of loading uncancelled
PROBE = {"steps": 1, "batch_size": 2, "spacing": 6.0, "canvas": 64, "view_size": 48, "queue_size": 16}


def test_a_pretraining_cancelled_while_it_loads_frees_its_worker_within_seconds(
    service: Service, shared_data: Path, tmp_path: Path
):
    with service.client("submitter") as client:
        series = []
        for path in distinct_cts(shared_data, tmp_path, SERIES):
            response = client.post("/v1/studies", files=multipart([path]))
            assert response.status_code == 201, response.text
            series.append(response.json()["series"][0]["id"])
        body = {"series_ids": series, "method": "moco+lrc", "name": "cancelled-loading", "options": {"steps": 5}}
        job_id = client.post("/v1/pretrains", json=body).json()["job_id"]
        deadline = time.monotonic() + 120
        while (job := client.get(f"/v1/jobs/{job_id}").json())["progress"]["stage"] != "preparing":
            assert job["state"] in ("queued", "running"), job
            assert job["progress"]["stage"] in ("queued", "starting", "reading"), job
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["progress"]["metrics"]["prepared"] < 0.5, job  # early in its loading

        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        cancelled = time.monotonic()
        probe = {"series_ids": series[:1], "method": "moco", "name": "probe-after-cancel", "options": PROBE}
        probe_id = client.post("/v1/pretrains", json=probe).json()["job_id"]
        service.wait_job(probe_id, timeout=IDLE_WITHIN_S, states=("running", "succeeded", "failed"))
        idle = time.monotonic() - cancelled
        log.info("cancel-to-idle: %.2f s (the probe job claimed)", idle)

        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] == "cancelled", job
        assert "step" not in job["progress"]["metrics"], job  # stopped before training
        assert service.wait_job(probe_id, timeout=120)["state"] == "succeeded"
    cleanup.sweep(service.ctx)
    assert not list(service.settings.work_dir.glob(f"pretrain-{job_id}-*"))
    assert idle < IDLE_WITHIN_S
