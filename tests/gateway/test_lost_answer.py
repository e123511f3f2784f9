"""A gateway killed between asking for a segmentation and recording the answer runs one job, not two.

An HTTP proxy between the gateway and ``lrc serve`` forwards everything; on the first
``POST /v1/segmentations`` it lets the service create the job, then SIGKILLs the gateway before the
answer reaches it. The restarted gateway asks again with the same ``Idempotency-Key`` and must get
that job back, not a second one.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import GatewayProcess, LrcService
from tests.gateway.orthanc import Orthanc
from tests.gateway.test_runner import outbox_rows, send_series, wait_for

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class KillingProxy:
    """Forwards HTTP to ``target``; calls ``on_segment`` once, after the service answered the first segment request."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.on_segment: Callable[[], None] = lambda: None
        self.segment_requests: list[dict[str, Any]] = []  # the service's answers, in order
        self.segment_keys: list[str | None] = []  # the Idempotency-Key of each
        self.fired = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    chunks = []
                    while size := int(self.rfile.readline().strip(), 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                answer = httpx.request(
                    self.command, f"{proxy.target}{self.path}", content=self._body(), headers=headers, timeout=120
                )
                if self.command == "POST" and self.path.startswith("/v1/segmentations"):
                    proxy.segment_requests.append(answer.json())
                    proxy.segment_keys.append(self.headers.get("Idempotency-Key"))
                    if not proxy.fired.is_set():
                        proxy.on_segment()  # the job exists now; its asker dies before it hears of it
                        proxy.fired.set()
                        self.close_connection = True
                        return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-encoding":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(lrc_service: LrcService) -> Iterator[KillingProxy]:
    server = KillingProxy(lrc_service.url)
    try:
        yield server
    finally:
        server.close()


def test_killed_before_the_answer_is_recorded_runs_one_job(
    gateway_factory: Callable[..., GatewayProcess],
    proxy: KillingProxy,
    lrc_service: LrcService,
    orthanc: Orthanc,
    shared_data: Path,
    tmp_path: Path,
):
    started = dt.datetime.now(dt.UTC)
    gateway = gateway_factory("--api-url", proxy.url)
    proxy.on_segment = lambda: gateway.stop(kill=True)
    series_uid = send_series(orthanc, shared_data, tmp_path / "ct")

    assert proxy.fired.wait(180), "the gateway never asked for a segmentation"
    assert gateway.process is None  # SIGKILLed while waiting for the answer
    (segment,) = [r for r in outbox_rows(gateway) if r["kind"] == "segment"]
    assert segment["state"] == "pending"
    key = json.loads(segment["payload"])["intent"]["key"]  # what it was about to ask is on record
    assert proxy.segment_keys == [key]

    gateway.start()
    segs = wait_for("a SEG in Orthanc", lambda: orthanc.results_for(series_uid), timeout=180)
    assert len(segs) == 1
    # Asked again with the same key, answered with the first request's segmentation and job.
    assert proxy.segment_keys == [key, key]
    first, again = proxy.segment_requests
    assert again == first
    (segment,) = [r for r in outbox_rows(gateway) if r["kind"] == "segment"]
    assert json.loads(segment["payload"])["segmentation_id"] == first["id"]
    assert [r["state"] for r in outbox_rows(gateway)] == ["done"] * 4
    # One job in the service (its only segment job since this test began; the proxy saw every request).
    with httpx.Client(base_url=lrc_service.url, headers={"Authorization": f"Bearer {lrc_service.key}"}) as client:
        jobs = client.get("/v1/jobs", params={"kind": "segment", "limit": 100}).json()
    since = [j["id"] for j in jobs if dt.datetime.fromisoformat(j["created_at"]) >= started]
    assert since == [first["job_id"]]
