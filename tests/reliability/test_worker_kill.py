"""Workers killed with SIGKILL in the middle of a job, under ``lrc serve`` as users run it.

Two faults, both real process kills: the Celery pool process executing an inference (what the
kernel's out-of-memory killer picks), and a whole worker (its main process and its pool process)
in the middle of fine-tuning or inference. ``lrc serve`` starts a dead worker again; the recovery
sweep gives the job a new delivery. Each job must end ``succeeded`` after more than one attempt,
with exactly one result and no half-written or temporary file left in the data folder.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from core.records.projects import DEFAULT
from lrc.io import read_nifti
from tests.reliability.conftest import STARTER, Served
from tests.reliability.processes import celery_worker, children, kill_hard

# Enough steps that training still runs when it is killed, few enough for a quick re-run on a shared CPU.
TRAINING = {"steps": 300, "batch_size": 2, "patch": 48, "validate_every": 1000, "spacing": 6.0, "canvas": 64}


def assert_no_debris(data_dir: Path) -> None:
    """Every stored blob is whole (its content hashes to its name); no temporary file or folder is left."""
    blobs = data_dir / "blobs"
    for path in blobs.glob("??/*"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"half-written blob {path}"
    assert not any((blobs / ".tmp").iterdir()), sorted((blobs / ".tmp").iterdir())
    work = data_dir / "work"
    assert not any(p for p in work.iterdir() if p.name.startswith(("segment-", "finetune-"))), sorted(work.iterdir())
    staging = [p for p in (data_dir / "models").rglob(".*") if p.is_dir()]  # save_model's staging folders
    assert not staging, staging


def kill_during(served: Served, job_id: str, worker: str, stages: tuple[str, ...], whole_worker: bool) -> None:
    """SIGKILL the pool process running the job (and the worker's main process if ``whole_worker``)."""

    def reached(job: dict[str, Any]) -> bool:
        return job["state"] != "queued" and (job["progress"]["stage"] in stages or job["attempts"] > 1)

    job = served.wait(job_id, reached)
    assert job["state"] == "running", f"the job went past {stages} unseen: {job}"
    assert job["attempts"] == 1, job
    main = celery_worker(served.process.pid, worker)
    pool = children(main)
    assert len(pool) == 1, f"worker {worker} (PID {main}) has pool processes {pool}; expected one (-c 1)"
    kill_hard([main, *pool] if whole_worker else pool)
    if whole_worker:  # lrc serve notices and starts the worker again
        deadline = time.monotonic() + 30
        while True:
            try:
                restarted = celery_worker(served.process.pid, worker)
            except LookupError:
                restarted = main
            if restarted != main:
                break
            assert time.monotonic() < deadline, f"lrc serve did not start worker {worker} again; see {served.log}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def big_series_id(served: Served, shared_data: Path) -> str:
    """The 112-slice real CT: its prediction lasts long enough to be interrupted."""
    image = shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz"
    response = served.client.post("/v1/studies", files=[("files", (image.name, image.read_bytes(), "x"))])
    assert response.status_code == 201, response.text
    return str(response.json()["series"][0]["id"])


@pytest.mark.parametrize("whole_worker", [False, True], ids=["pool-process", "whole-worker"])
def test_inference_killed_mid_prediction(served: Served, big_series_id: str, whole_worker: bool):
    body = {"series_id": big_series_id, "model": STARTER}
    response = served.client.post("/v1/segmentations", json=body)
    assert response.status_code == 202, response.text
    segmentation_id, job_id = response.json()["id"], response.json()["job_id"]
    kill_during(served, job_id, "infer", ("predicting", "storing"), whole_worker)

    job = served.wait(job_id, lambda j: j["state"] in ("succeeded", "failed", "cancelled"), every=0.3)
    assert job["state"] == "succeeded", (job, served.log.read_text()[-3000:])
    assert job["attempts"] >= 2, job
    assert job["result"]["segmentation_id"] == segmentation_id
    segmentation = served.client.get(f"/v1/segmentations/{segmentation_id}").json()
    assert segmentation["formats"] == ["nifti"]
    result = served.client.get(f"/v1/segmentations/{segmentation_id}/result", params={"format": "nifti"})
    assert result.status_code == 200
    labels_file = served.data_dir / "work" / f"check-{job_id}.nii.gz"
    labels_file.write_bytes(result.content)
    try:
        assert read_nifti(labels_file).shape == (122, 101, 112)  # the whole label map, readable
    finally:
        labels_file.unlink()
    assert_no_debris(served.data_dir)


def test_finetune_killed_mid_training(served: Served, series_id: str, ct_nifti: tuple[Path, Path]):
    label = ct_nifti[1]
    form = {
        "name": "killed-training",
        "labels": json.dumps({"5": "liver", "1": "spleen"}),
        "cases": json.dumps([{"image": {"series_id": series_id}, "label": label.name}]),
    }
    response = served.client.post("/v1/datasets", data=form, files=[("files", (label.name, label.read_bytes(), "x"))])
    assert response.status_code == 201, response.text
    body = {"dataset_id": response.json()["id"], "base_model": f"{STARTER}:1", "options": TRAINING}
    response = served.client.post("/v1/finetunes", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    served.wait(job_id, lambda j: j["progress"]["metrics"].get("step", 0) >= 1)
    kill_during(served, job_id, "train", ("training",), whole_worker=True)

    job = served.wait(job_id, lambda j: j["state"] in ("succeeded", "failed", "cancelled"), timeout=180, every=0.3)
    assert job["state"] == "succeeded", (job, served.log.read_text()[-3000:])
    assert job["attempts"] >= 2, job
    versions = next(m for m in served.client.get("/v1/models").json() if m["name"] == STARTER)["versions"]
    assert [v["version"] for v in versions] == [1, 2], versions  # exactly one new version, not one per attempt
    assert job["result"] == {**job["result"], "model": STARTER, "version": 2}
    # The shared starter stays where it was; the project's own version goes under models/projects/<project>.
    assert sorted(p.name for p in (served.data_dir / "models" / STARTER).iterdir()) == ["starter"]
    own = served.data_dir / "models" / "projects" / DEFAULT / STARTER
    folders = sorted(p.name for p in own.iterdir())
    assert folders == [f"job-{job_id}"], folders
    card = json.loads((own / f"job-{job_id}" / "model.json").read_text())
    weights = own / f"job-{job_id}" / "weights.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card["weights_sha256"]
    assert card["training"]["steps"] == TRAINING["steps"]  # the re-run trained from the start to the end
    assert_no_debris(served.data_dir)
