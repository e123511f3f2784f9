"""The lrc service's REST API, as the gateway uses it (over HTTP; the gateway never imports ``app``).

HTTP outcomes become the gateway's errors: no connection, 5xx, 429, 401/403 (a key that an
operator can fix) are :class:`Retryable`; 409 on a result is :class:`NotReady`; other 4xx are
:class:`Permanent`, with the service's problem+json ``detail`` as the message.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from gateway.errors import NotReady, Permanent, Retryable, Unreachable

RETRY_STATUS = frozenset({401, 403, 408, 425, 429})
FAILED_JOB = ("failed", "cancelled")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
CHUNK = 1 << 20


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict):
        return f"HTTP {response.status_code}: {body.get('detail') or body.get('title') or body}"
    return f"HTTP {response.status_code}: {body}"


def check(response: httpx.Response, not_ready: bool = False) -> httpx.Response:
    """``response`` if it succeeded, else the matching gateway error."""
    if response.is_success:
        return response
    message = f"{response.request.method} {response.request.url.path}: {_problem(response)}"
    if not_ready and response.status_code == 409:
        raise NotReady(message)
    if response.status_code >= 500 or response.status_code in RETRY_STATUS:
        raise Retryable(message)
    raise Permanent(message)


class ServiceClient:
    """Calls of the service's ``/v1`` API with the gateway's API key."""

    def __init__(self, base_url: str, api_key: str, timeout: float, tmp_dir: Path) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)
        self._tmp_dir = tmp_dir

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _call(self, method: str, url: str, not_ready: bool = False, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {url}: the service did not answer ({type(exc).__name__}: {exc})") from exc
        return check(response, not_ready)

    def upload(self, folder: Path, series_uid: str) -> list[str]:
        """Upload the instances in ``folder`` as one zip; the ids of the stored series with ``series_uid``.

        A repeated upload of the same files returns the series stored the first time.
        """
        with tempfile.TemporaryFile(dir=self._tmp_dir) as archive:
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as writer:
                for path in sorted(folder.glob("*.dcm")):
                    # No file times in the zip: the same instances make the same bytes, which the
                    # service recognises as a repeated upload.
                    entry = zipfile.ZipInfo(f"{series_uid}/{path.name}", date_time=ZIP_EPOCH)
                    with path.open("rb") as source, writer.open(entry, "w") as sink:
                        shutil.copyfileobj(source, sink, CHUNK)
            archive.seek(0)
            response = self._call("POST", "/v1/studies", files=[("files", ("series.zip", archive, "application/zip"))])
        study = response.json()
        found = [s["id"] for s in study.get("series", []) if s.get("series_instance_uid") == series_uid]
        if not found:
            uids = [s.get("series_instance_uid") for s in study.get("series", [])]
            raise Permanent(f"the service stored study {study.get('id')} without series {series_uid} (got {uids})")
        return found

    def create_dataset(
        self, name: str, labels: dict[int, str], cases: list[dict[str, Any]], files: list[Path]
    ) -> dict[str, Any]:
        """A fine-tuning dataset: ``cases`` name stored series and label files sent in ``files``."""
        fields = {"name": name, "labels": json.dumps(labels), "cases": json.dumps(cases)}
        with ExitStack() as stack:
            parts = [("files", (p.name, stack.enter_context(p.open("rb")), "application/dicom")) for p in files]
            body: dict[str, Any] = self._call("POST", "/v1/datasets", data=fields, files=parts).json()
        return body

    def segment(self, series_id: str, model: str | None, key: str | None = None) -> tuple[str, str]:
        """Ask for a segmentation; its id and its job's id.

        ``key`` goes as the ``Idempotency-Key`` header: the service answers a repeated key with the first
        request's segmentation and job, and makes no other job.
        """
        headers = {"Idempotency-Key": key} if key else {}
        body = {"series_id": series_id, "model": model}
        response = self._call("POST", "/v1/segmentations", json=body, headers=headers)
        answer = response.json()
        return str(answer["id"]), str(answer["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's state, progress and error."""
        body: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}").json()
        return body

    def result(self, segmentation_id: str, fmt: str) -> bytes:
        """A segmentation's result file in ``fmt`` (``dicom-seg``, ``rtstruct``).

        Raises:
            NotReady: the job or its DICOM export has not produced it yet.
            Permanent: the job or its export failed or was cancelled, so the result will never come.
        """
        try:
            response = self._call("GET", f"/v1/segmentations/{segmentation_id}/result", True, params={"format": fmt})
        except NotReady:
            record = self.segmentation(segmentation_id)
            jobs = (("segmentation", record.get("job_id")), (f"{fmt} export", record.get("export_job_id")))
            for what, job_id in jobs:
                job = self.job(job_id) if job_id else None
                if job is not None and job["state"] in FAILED_JOB:
                    reason = job.get("error") or "no reason given"
                    raise Permanent(f"{what} job {job_id} {job['state']}: {reason}") from None
            raise
        return response.content

    def segmentation(self, segmentation_id: str) -> dict[str, Any]:
        """A segmentation's record: its job, export job and formats ready."""
        body: dict[str, Any] = self._call("GET", f"/v1/segmentations/{segmentation_id}").json()
        return body
