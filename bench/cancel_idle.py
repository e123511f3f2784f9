"""Cancel-to-idle: how long a training worker keeps working after its job is cancelled while it loads data.

A real API (in this process, real HTTP) and a real ``train`` Celery worker process (embedded mode: SQLite
records, the on-disk broker). A pre-training on ``--series`` distinct copies of the 112-slice real CT
(the defaults: 1.5 mm, 256-pixel canvas, super-pixels for every slice) or a fine-tuning on ``--cases``
cases of it is started, cancelled ``--after`` seconds into its loading, and at once a small probe job is
queued on the same worker. Measured from the cancellation: until the job's work folder is gone (the
runner returned) and until the probe is claimed (the worker is idle again).

Usage: ``python bench/cancel_idle.py [--series 8] [--cases 12] [--after 2]``; prints one JSON line per job.
Run it against another checkout by running that checkout's copy (``PYTHONPATH`` its root).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from core.settings import Settings  # noqa: E402
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service  # noqa: E402
from tests.service.helpers import distinct_cts  # noqa: E402

SHARED = Path(os.environ.get("LRC_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
PROBE = {"steps": 1, "batch_size": 2, "spacing": 6.0, "canvas": 64, "view_size": 48, "queue_size": 16}


def _upload(service: Service, paths: list[Path]) -> list[str]:
    ids = []
    with service.client("submitter") as client:
        for path in paths:
            response = client.post("/v1/studies", files=[("files", (path.name, path.read_bytes(), "x"))])
            assert response.status_code == 201, response.text
            ids.append(response.json()["series"][0]["id"])
    return ids


def _dataset(service: Service, series: list[str], label: Path) -> str:
    cases = [{"image": {"series_id": s}, "label": label.name} for s in series]
    form = {"name": "cancel-bench", "labels": json.dumps({"5": "liver", "1": "spleen"}), "cases": json.dumps(cases)}
    with service.client("submitter") as client:
        files = [("files", (label.name, label.read_bytes(), "x"))]
        response = client.post("/v1/datasets", data=form, files=files)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def measure(service: Service, kind: str, body: dict[str, Any], probe: dict[str, Any], after: float) -> dict[str, Any]:
    """Start a job, cancel it ``after`` seconds into its run, time its folder's removal and the probe's claim."""
    with service.client("submitter") as client:
        job_id = client.post(f"/v1/{kind}", json=body).json()["job_id"]
        job = service.wait_job(job_id, states=("running", "succeeded", "failed", "cancelled"))
        time.sleep(after)
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] != "running" or "step" in job["progress"]["metrics"]:
            raise SystemExit(f"the job is past its loading after {after} s: {job}")
        cancelled = time.monotonic()
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        probe_id = client.post("/v1/pretrains", json=probe).json()["job_id"]
        folder_gone = idle = None
        while folder_gone is None or idle is None:
            if folder_gone is None and not list(service.settings.work_dir.glob(f"*-{job_id}-*")):
                folder_gone = time.monotonic() - cancelled
            if idle is None and client.get(f"/v1/jobs/{probe_id}").json()["state"] != "queued":
                idle = time.monotonic() - cancelled
            assert time.monotonic() - cancelled < 600, "the worker did not stop in 10 minutes"
            time.sleep(0.05)
        service.wait_job(probe_id, timeout=300)
        return {
            "job": kind,
            "stage_when_cancelled": job["progress"]["stage"],
            "cancelled_after_s": after,
            "folder_gone_s": round(folder_gone, 2),
            "worker_idle_s": round(idle, 2),
        }


def _cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=8)
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--after", type=float, default=2.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="cancel-bench-") as root:
        settings = Settings(
            data_dir=Path(root) / "data", bootstrap_admin_key=ADMIN_KEY, max_upload_bytes=1 << 30, **FAST
        )
        with running_service(settings, (("train", "train"),), Path(root)) as service:
            copies = distinct_cts(SHARED, Path(root) / "copies", max(args.series, args.cases) + 1)
            series = _upload(service, copies)
            probe = {"series_ids": series[-1:], "method": "moco", "name": "probe", "options": PROBE}
            pretrain = {"series_ids": series[: args.series], "method": "moco+lrc", "name": "bench", "options": {}}
            machine = {"machine": f"{os.cpu_count()} cores, {_cpu()}"}
            print(json.dumps(measure(service, "pretrains", pretrain, probe, args.after) | machine), flush=True)
            label = SHARED / "nifti" / "totalseg_ct_abdomen" / "example_seg_fast_force_split.nii.gz"
            dataset = _dataset(service, series[: args.cases], label)
            finetune = {"dataset_id": dataset, "name": "bench-ft", "options": {"steps": 5, "validate_every": 5}}
            print(json.dumps(measure(service, "finetunes", finetune, probe, args.after) | machine), flush=True)


if __name__ == "__main__":
    main()
