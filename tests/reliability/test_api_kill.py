"""The API process killed with SIGKILL in the middle of uploads, then started again: the sweep of leftovers
removes what the dead process left, and nothing that records name or that a live upload uses.

One kill leaves both kinds of debris: a large upload still streaming in (its staging folder) and a DICOM
upload of 200 files whose blobs are being stored, killed once the first of its blob files is in place,
before the request records them (its staging folder full of copies, blob files no record names). The
API is started again with short bounds (``LRC_CLEANUP_INTERVAL_S``, ``LRC_UPLOAD_ABANDONED_AFTER_S``,
``LRC_ORPHAN_BLOB_AFTER_S`` of 1 s), and meanwhile takes another upload that must come through whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import select

from core.records.db import Database
from core.records.tables import Blob
from core.settings import Settings
from tests import dicom_factory
from tests.service.harness import ADMIN_KEY, FAST, free_port, python, service_env
from tests.service.helpers import multipart

log = logging.getLogger(__name__)
MIB = 1024**2
SHORT = {"LRC_CLEANUP_INTERVAL_S": "1", "LRC_UPLOAD_ABANDONED_AFTER_S": "1", "LRC_ORPHAN_BLOB_AFTER_S": "1"}


@contextlib.contextmanager
def api(settings: Settings, log_file: Path, extra: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The API alone (``uvicorn --factory app.main:create_app``) as a process; killed afterwards if alive."""
    port = free_port()
    env = service_env(settings) | {"LRC_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY} | extra
    command = [python(), "-m", "uvicorn", "--factory", "app.main:create_app", "--port", str(port)]
    with log_file.open("ab") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the API exited; see {log_file}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"the API did not start in 60 s; see {log_file}"
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)


def _blob_files(data_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (data_dir / "blobs").glob("??/*")}


def _recorded(settings: Settings) -> set[str]:
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            return set(session.scalars(select(Blob.sha256)))
    finally:
        db.engine.dispose()


def _staging(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "work").glob("upload-*"))


def _streamed(url: str, total: int, sent: list[int]) -> None:
    """POST a multipart upload of ``total`` bytes, 1 MiB every 20 ms, counting what went out; errors ignored."""
    boundary = "lrc-slow-upload"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.nii"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(total // MIB):
            time.sleep(0.02)
            sent[0] += MIB
            yield b"\0" * MIB
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    with contextlib.suppress(httpx.HTTPError), _client(url) as client:
        client.post("/v1/studies", content=body(), headers=headers)


def _upload_in_thread(url: str, paths: list[Path], answers: list[httpx.Response]) -> threading.Thread:
    def send() -> None:
        with contextlib.suppress(httpx.HTTPError), _client(url) as client:
            answers.append(client.post("/v1/studies", files=multipart(paths)))

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _kill_while_storing(process: subprocess.Popen[bytes], data_dir: Path, before: set[str]) -> None:
    """SIGKILL the API as soon as a blob file appears that was not there ``before``."""
    deadline = time.monotonic() + 60
    while not set(_blob_files(data_dir)) - before:
        assert process.poll() is None, "the API died by itself"
        assert time.monotonic() < deadline, "the upload stored no blob in 60 s"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_leftovers_of_an_api_killed_mid_upload_are_swept_and_records_kept(
    shared_data: Path, ct_nifti: tuple[Path, Path], tmp_path: Path
):
    settings = Settings(data_dir=tmp_path / "data", bootstrap_admin_key=ADMIN_KEY, max_upload_bytes=2**30, **FAST)
    big = dicom_factory.write_series(shared_data, tmp_path / "big", dicom_factory.line(200), size=256)
    other = dicom_factory.write_series(shared_data, tmp_path / "other", dicom_factory.line(60), size=128)
    with api(settings, tmp_path / "api-1.log", {}) as (process, url):
        with _client(url) as client:
            kept = client.post("/v1/studies", files=multipart([ct_nifti[0]]))
        assert kept.status_code == 201, kept.text
        recorded = _recorded(settings)
        assert recorded, "the first upload recorded no blob"
        sent = [0]
        stream = threading.Thread(target=_streamed, args=(url, 512 * MIB, sent), daemon=True)
        stream.start()
        while sent[0] < 16 * MIB or not _staging(settings.data_dir):
            assert stream.is_alive(), "the streamed upload ended early"
            time.sleep(0.01)
        answers: list[httpx.Response] = []
        _upload_in_thread(url, big, answers)
        _kill_while_storing(process, settings.data_dir, set(_blob_files(settings.data_dir)))
    assert not answers, f"the DICOM upload was answered before the kill: {answers[0].text}"
    left = {sha: size for sha, size in _blob_files(settings.data_dir).items() if sha not in _recorded(settings)}
    staging = _staging(settings.data_dir)
    assert left, "the kill left no blob without a record"
    assert len(staging) == 2, staging
    disk = sum(left.values()) + sum(p.stat().st_size for folder in staging for p in folder.rglob("*") if p.is_file())
    log.info("left by the kill: %d staging folders, %d unrecorded blobs, %d bytes", len(staging), len(left), disk)

    with api(settings, tmp_path / "api-2.log", SHORT) as (process, url):
        answers = []
        during = _upload_in_thread(url, other, answers)  # in flight while the sweeper runs every second
        deadline = time.monotonic() + 30
        while _staging(settings.data_dir) or set(left) & set(_blob_files(settings.data_dir)):
            assert time.monotonic() < deadline, (_staging(settings.data_dir), (tmp_path / "api-2.log").read_text())
            time.sleep(0.1)
        during.join(60)
        assert answers, "the upload made during the sweeps got no answer"
        assert answers[0].status_code == 201, answers[0].text
        time.sleep(2.5)  # two more sweeps with everything recorded
        with _client(url) as client:
            for study in (kept.json(), answers[0].json()):
                assert client.get(f"/v1/studies/{study['id']}").status_code == 200
    files = _blob_files(settings.data_dir)
    assert set(files) == _recorded(settings), "every blob file has its record, and every record its file"
    assert recorded <= set(files)
    for sha in files:
        path = settings.blob_dir / sha[:2] / sha
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert not _staging(settings.data_dir)
    assert not any((settings.blob_dir / ".tmp").iterdir())
    logged = (tmp_path / "api-2.log").read_text()
    assert "cleanup: removed" in logged, logged
    assert "slice0" not in logged  # counts and bytes, no file names or UIDs
    assert "1.2.826" not in logged
