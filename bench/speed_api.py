"""Speed through the API: a real ``lrc serve`` (uvicorn + Celery workers, SQLite, on-disk queue).

``e2e``: upload the 300-slice CT (300 DICOM files, one multipart request) -> segment with the
production (starter) model -> NIfTI ready -> DICOM SEG ready (the export job), timed from the
client; then a batch of ``--batch`` segmentations of the same series submitted at once with the
model warm (volumes per minute), then the same batch with a second ``infer`` worker started beside
``lrc serve``'s own (``lrc worker --queues infer``).

``load``: status polls (``GET /v1/jobs/{id}``, authenticated, one database read) from an asyncio
httpx load generator (wrk and locust are not installed here; the generator runs in this process, on
the same 2 cores as the API, so the numbers are a floor), ``--concurrent`` uploads at once, and the
API process's resident memory, sampled every 20 ms from ``/proc``, while one 1 GB file is uploaded.

Usage: ``python bench/speed_api.py e2e|load [--batch 3] [--device cpu|cuda] [--concurrency 16] [--seconds 10]``
Writes ``bench/results/speed_api_<what>[_tag].json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from speed_env import machine  # noqa: E402

from tests.service.harness import ADMIN_KEY, lrc_serve  # noqa: E402


@contextlib.contextmanager
def served(
    work: Path, log_name: str, device: str = "cpu", torch_threads: int | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client, float, dict[str, str]]]:
    """``lrc serve`` on a fresh data folder; yields the process, an admin client, start-up seconds, env.
    ``torch_threads``: the workers' ``LRC_WORKER_TORCH_THREADS`` (``None``: the default policy)."""
    import shutil

    data = work / f"api-{log_name}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRC_")}
    env.update(LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, LRC_DEVICE=device, LRC_DATA_DIR=str(data))
    if torch_threads is not None:
        env["LRC_WORKER_TORCH_THREADS"] = str(torch_threads)
    begin = time.perf_counter()
    with lrc_serve(data, env, work / f"{log_name}.log", frozenset({"infer"})) as (process, client):
        client.timeout = httpx.Timeout(600)
        yield process, client, time.perf_counter() - begin, env


def upload(client: httpx.Client, series: Path) -> tuple[str, float]:
    """Upload every file of ``series`` in one request; the series id and seconds."""
    files = sorted(series.glob("*.dcm"))
    handles = [f.open("rb") for f in files]
    try:
        begin = time.perf_counter()
        response = client.post(
            "/v1/studies",
            files=[("files", (f.name, h, "application/dicom")) for f, h in zip(files, handles, strict=True)],
        )
        seconds = time.perf_counter() - begin
    finally:
        for handle in handles:
            handle.close()
    response.raise_for_status()
    return str(response.json()["series"][0]["id"]), seconds


def segment(client: httpx.Client, series_id: str) -> str:
    """Ask for a segmentation; its id."""
    response = client.post("/v1/segmentations", json={"series_id": series_id})
    response.raise_for_status()
    return str(response.json()["id"])


def wait_ready(client: httpx.Client, seg_id: str, fmt: str, timeout: float = 1200) -> float:
    """Poll until the result in ``fmt`` downloads; the time it was first seen (perf_counter)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/v1/segmentations/{seg_id}/result", params={"format": fmt})
        if response.status_code == 200:
            return time.perf_counter()
        view = client.get(f"/v1/segmentations/{seg_id}").json()
        if view["state"] in ("failed", "cancelled"):
            job = client.get(f"/v1/jobs/{view['job_id']}").json()
            raise RuntimeError(f"segmentation {seg_id} {view['state']}: {job}")
        time.sleep(0.1)
    raise TimeoutError(f"segmentation {seg_id} not ready in {timeout} s")


def batch(client: httpx.Client, series_id: str, count: int) -> dict[str, float]:
    """``count`` segmentations submitted at once: seconds until every SEG is ready, volumes a minute."""
    begin = time.perf_counter()
    ids = [segment(client, series_id) for _ in range(count)]
    done = max(wait_ready(client, i, "dicom-seg") for i in ids)
    seconds = done - begin
    return {"volumes": count, "seconds": round(seconds, 2), "volumes_per_minute": round(60 * count / seconds, 2)}


def e2e(args: argparse.Namespace) -> dict[str, Any]:
    """Upload -> NIfTI -> SEG (cold and warm), then batches with one and two infer workers."""
    from make_series import build

    series = build(args.shared_data, args.work / f"ct{args.slices}", args.slices)
    report: dict[str, Any] = {"runs": [], "worker_torch_threads": args.torch_threads or "default policy"}
    with served(args.work, "speed-api-e2e", args.device, args.torch_threads) as (_process, client, startup, env):
        report["serve_startup_s"] = round(startup, 2)
        series_id, upload_s = upload(client, series)
        for attempt in ("cold", *["warm"] * args.warm):
            begin = time.perf_counter()
            seg_id = segment(client, series_id)
            nifti = wait_ready(client, seg_id, "nifti")
            seg = wait_ready(client, seg_id, "dicom-seg")
            run = {"model": attempt, "nifti_ready_s": round(nifti - begin, 2), "seg_ready_s": round(seg - begin, 2)}
            if attempt == "cold":
                run["upload_s"] = round(upload_s, 2)
                run["upload_to_seg_s"] = round(upload_s + seg - begin, 2)
            report["runs"].append(run)
            print(json.dumps(run), flush=True)
        report["batch_one_worker"] = batch(client, series_id, args.batch)
        print(json.dumps(report["batch_one_worker"]), flush=True)
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "lrc"), "worker", "--queues", "infer", "--name", "infer2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_worker(client, "infer2")
            batch(client, series_id, 1)  # the second worker loads its model
            report["batch_two_workers"] = batch(client, series_id, args.batch)
            print(json.dumps(report["batch_two_workers"]), flush=True)
        finally:
            worker.terminate()
            worker.wait(60)
    one, two = report["batch_one_worker"], report["batch_two_workers"]
    report["two_over_one_workers"] = round(two["volumes_per_minute"] / one["volumes_per_minute"], 2)
    return report


def _wait_worker(client: httpx.Client, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {w.split("@")[0] for w in client.get("/readyz").json()["checks"].get("workers", [])}
        if name in seen:
            return
        time.sleep(0.5)
    raise TimeoutError(f"worker {name} did not report in {timeout} s")


async def _poll(url: str, path: str, concurrency: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        stop = time.perf_counter() + seconds

        async def one() -> None:
            while time.perf_counter() < stop:
                begin = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - begin)
                response.raise_for_status()

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return latencies


def _rss_sampler(pid: int, samples: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                samples.append(int(line.split()[1]) // 1024)
        time.sleep(0.02)


def _big_file(size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    block = os.urandom(chunk)
    for _ in range(size // chunk):
        yield block


def load(args: argparse.Namespace) -> dict[str, Any]:
    """Status-poll throughput and latency, concurrent uploads, API memory during a 1 GB upload."""
    from make_series import build

    series = build(args.shared_data, args.work / "ct20", 20)
    report: dict[str, Any] = {}
    with served(args.work, f"speed-api-load{'-' + args.tag if args.tag else ''}") as (process, client, _s, _env):
        url = str(client.base_url).rstrip("/")
        series_id, _ = upload(client, series)
        job = client.post("/v1/segmentations", json={"series_id": series_id}).json()["job_id"]
        latencies = asyncio.run(_poll(url, f"/v1/jobs/{job}", args.concurrency, args.seconds))
        ms = sorted(v * 1000 for v in latencies)
        report["status_polls"] = {
            "concurrency": args.concurrency,
            "requests": len(ms),
            "per_second": round(len(ms) / args.seconds, 1),
            "p50_ms": round(ms[len(ms) // 2], 2),
            "p99_ms": round(ms[int(len(ms) * 0.99)], 2),
        }
        print(json.dumps(report["status_polls"]), flush=True)

        def one_upload() -> float:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=600) as c:
                return upload(c, series)[1]

        threads: list[float] = []
        begin = time.perf_counter()
        workers = [threading.Thread(target=lambda: threads.append(one_upload())) for _ in range(args.concurrent)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        report["concurrent_uploads"] = {
            "uploads": args.concurrent,
            "files_each": 20,
            "mb_each": round(sum(p.stat().st_size for p in series.glob("*.dcm")) / 1e6, 1),
            "ok": len(threads),
            "wall_s": round(time.perf_counter() - begin, 2),
            "median_each_s": round(statistics.median(threads), 2) if threads else None,
        }
        print(json.dumps(report["concurrent_uploads"]), flush=True)

        samples: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_rss_sampler, args=(process.pid, samples, stop), daemon=True)
        sampler.start()
        time.sleep(0.5)
        baseline = max(samples)
        size = args.upload_mb << 20
        begin = time.perf_counter()
        response = client.post(
            "/v1/studies",
            content=_multipart(size),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        seconds = time.perf_counter() - begin
        time.sleep(0.5)
        stop.set()
        sampler.join()
        report["big_upload"] = {
            "mb": args.upload_mb,
            "status": response.status_code,
            "answer": response.text[:300],
            "seconds": round(seconds, 2),
            "api_rss_before_mb": baseline,
            "api_rss_peak_mb": max(samples),
            "api_rss_growth_mb": max(samples) - baseline,
        }
        print(json.dumps(report["big_upload"]), flush=True)
    return report


BOUNDARY = "speedbenchboundary7d1f"


def _multipart(size: int) -> Iterator[bytes]:
    """One ``files`` part of ``size`` random bytes, streamed (the client holds 1 MB at a time)."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from _big_file(size)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def main() -> None:
    """Run one part and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["e2e", "load"])
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--warm", type=int, default=1)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument("--tag", default="")
    parser.add_argument(
        "--torch-threads", type=int, help="e2e: the workers' LRC_WORKER_TORCH_THREADS (default: the default policy)."
    )
    parser.add_argument("--device", default="cpu", help="The workers' LRC_DEVICE (e2e): cpu, cuda.")
    parser.add_argument("--work", type=Path, default=HERE / "out")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    info = machine(args.device)  # the card's name and CUDA version when the workers use one
    result = e2e(args) if args.what == "e2e" else load(args)
    report = {"benchmark": f"speed_api_{args.what}", "machine": info, "loadavg_after": list(os.getloadavg()), **result}
    path = args.out or HERE / "results" / f"speed_api_{args.what}{'_' + args.tag if args.tag else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
