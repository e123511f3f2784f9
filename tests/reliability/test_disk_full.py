"""Disk full during an upload: a real tmpfs of a few MiB holds the data folder (blobs and work).

``mount -t tmpfs`` needs root (or CAP_SYS_ADMIN), which the project's machines and CI have; without
it the test fails and says so rather than injecting a fake ``OSError``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records.tables import Study
from core.settings import Settings
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service
from tests.service.helpers import ct_series, multipart

MIB = 1024**2
SIZE = 12 * MIB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs ({done.stderr.decode().strip()}): run the reliability tests as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves about ``leave`` bytes free."""
    ballast = disk / "ballast"
    stat = os.statvfs(disk)
    with ballast.open("ab") as sink:
        sink.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return ballast


def _blobs(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "blobs").glob("??/*")}


def _debris(data_dir: Path) -> list[Path]:
    return [*(data_dir / "blobs" / ".tmp").iterdir(), *(data_dir / "work").iterdir()]


def test_a_full_disk_fails_the_upload_cleanly(small_disk: Path, tmp_path: Path, shared_data: Path):
    data_dir = small_disk / "data"
    # Records and broker off the small disk: this test is about blob and work storage.
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{tmp_path / 'records.sqlite'}",
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
        bootstrap_admin_key=ADMIN_KEY,
        **FAST,
    )
    series = ct_series(shared_data)  # 20 real JPEG 2000 slices, 3.2 MB
    size = sum(p.stat().st_size for p in series)
    service: Service
    with running_service(settings, (), tmp_path) as service, service.client("submitter") as client:
        # 1. Not even the received files fit in the work folder.
        ballast = _fill(small_disk, leave=size // 3)
        refused = client.post("/v1/studies", files=multipart(series))
        # 2. The received files fit, their blobs only in part (the write fails half-way through).
        ballast.unlink()
        ballast = _fill(small_disk, leave=size + size // 2)
        half = client.post("/v1/studies", files=multipart(series))
        after_half = _blobs(data_dir)
        debris = _debris(data_dir)
        with service.ctx.db.session() as session:
            studies = session.query(Study).count()
        ballast.unlink()
        ballast = _fill(small_disk, leave=0)
        ready_when_full = client.get("/readyz")
        # 3. Space again: the same upload is stored whole.
        ballast.unlink()
        stored = client.post("/v1/studies", files=multipart(series))
        # No worker runs here, so /readyz stays 503 for its queues; the storage check must recover.
        ready_again = client.get("/readyz").json()["checks"]

    for response in (refused, half):
        assert response.status_code == 507, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "storage is full" in response.json()["detail"]
        assert response.headers["retry-after"]
    assert after_half == set(), f"blobs of the failed upload left behind: {len(after_half)}"
    assert debris == []
    assert studies == 0
    assert ready_when_full.status_code == 503
    assert ready_when_full.json()["checks"]["storage"] != "ok"  # the storage probe cannot write either
    assert ready_again["storage"] == "ok", ready_again
    assert stored.status_code == 201, stored.text
    assert len(_blobs(data_dir)) == len(series)
