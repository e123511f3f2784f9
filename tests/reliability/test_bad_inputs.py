"""The bad-input corpus (``tests/reliability/corpus.py``, ``corpus_bounds.py``) sent through the REST API
of one running ``lrc serve``: every case gets a 4xx ``application/problem+json`` with a message, none a
5xx; the service stays healthy and still segments a good series afterwards."""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import httpx
import pytest

from tests.reliability import corpus, corpus_bounds
from tests.reliability.conftest import STARTER, UPLOAD_LIMIT, Served
from tests.reliability.processes import descendants, peak_rss, reset_peak_rss, rss

PROBLEM = "application/problem+json"
MINIMUM = 50
API_GROWTH_BOUND = 512 << 20  # app/README.md: what one upload may add to the API process


@pytest.fixture(scope="module")
def bad_inputs(
    shared_data: Path, ct_nifti: tuple[Path, Path], series_id: str, tmp_path_factory: pytest.TempPathFactory
) -> list[corpus.BadInput]:
    """The whole corpus, generated from the real data."""
    folder = tmp_path_factory.mktemp("corpus")
    big_labels = shared_data / "nifti" / "totalseg_ct_abdomen" / "example_seg_fast_force_split.nii.gz"
    return [
        *corpus.dicom_cases(shared_data, folder),
        *corpus.inflation_cases(shared_data, folder / "inflation"),
        *corpus.archive_cases(shared_data, folder),
        *corpus.nifti_cases(ct_nifti[0]),
        *corpus.dataset_cases(series_id, ct_nifti[1], big_labels),
        *corpus.http_cases(UPLOAD_LIMIT, ct_nifti[0]),
        *corpus_bounds.dicom_cases(shared_data, folder),
        *corpus_bounds.archive_cases(shared_data, folder),
        *corpus_bounds.nifti_cases(ct_nifti[0]),
        *corpus_bounds.model_reference_cases(series_id, STARTER),
    ]


def _verdict(response: httpx.Response) -> str | None:
    """Why the answer is not a 4xx problem document with a message (``None`` when it is)."""
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}: {response.text[:300]}"
    if response.headers.get("content-type") != PROBLEM:
        return f"content type {response.headers.get('content-type')!r}: {response.text[:300]}"
    detail = response.json().get("detail")
    if not isinstance(detail, str) or not detail.strip():
        return f"no detail: {response.text[:300]}"
    return None


def test_every_bad_input_gets_a_4xx_problem(served: Served, bad_inputs: list[corpus.BadInput]):
    counts = collections.Counter(case.category for case in bad_inputs)
    assert len(bad_inputs) >= MINIMUM, counts
    assert len({case.id for case in bad_inputs}) == len(bad_inputs)  # every case named once
    wrong: dict[str, str] = {}
    statuses: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    processes = [served.process.pid, *descendants(served.process.pid)]  # the API, the workers, their pools
    before = {pid: rss(pid) for pid in processes}
    for pid in processes:
        reset_peak_rss(pid)
    for case in bad_inputs:
        try:
            response = served.client.request(case.method, case.path, **case.kwargs)
        except httpx.TransportError as exc:  # the server hung up without an answer
            wrong[case.id] = f"no answer: {exc!r}"
            continue
        statuses[case.category][response.status_code] += 1
        if (why := _verdict(response)) is not None:
            wrong[case.id] = why
    peaks = {pid: peak_rss(pid) for pid in processes}
    if out := os.environ.get("LRC_RELIABILITY_OUT"):  # the figures of bench/RELIABILITY.md
        table = {category: dict(sorted(counter.items())) for category, counter in sorted(statuses.items())}
        memory = {str(pid): {"before": before[pid], "peak": peaks[pid]} for pid in processes}
        report = {"cases": len(bad_inputs), "wrong": wrong, "statuses": table, "memory": memory}
        Path(out).write_text(json.dumps(report, indent=1))
    api = served.process.pid
    assert peaks[api] - before[api] < API_GROWTH_BOUND, (before[api], peaks[api])
    assert not wrong, "\n".join(f"{name}: {why}" for name, why in wrong.items())
    assert served.client.get("/healthz").status_code == 200
    log = served.log.read_text(errors="replace")
    assert "unhandled error" not in log  # app/api/problems.py logs every 5xx so


def test_service_still_segments_afterwards(served: Served, series_id: str, bad_inputs: list[corpus.BadInput]):
    response = served.client.post("/v1/segmentations", json={"series_id": series_id, "model": STARTER})
    assert response.status_code == 202, response.text
    job = served.wait(response.json()["job_id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert job["state"] == "succeeded", job
    assert served.client.get(f"/v1/segmentations/{response.json()['id']}/result?format=nifti").status_code == 200
