"""``lrc gateway`` end to end against a real Orthanc and a real ``lrc serve``.

Orthanc sends a CT series to the gateway by C-STORE; the gateway uploads it, has it segmented,
and sends the DICOM SEG back; it must appear in Orthanc, referencing the source series, once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.gateway.conftest import MODALITY, GatewayProcess, ct_series
from tests.gateway.orthanc import Orthanc


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 120, interval: float = 0.5) -> Any:
    """Poll until ``condition()`` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(interval)


def outbox_rows(gateway: GatewayProcess) -> list[dict[str, Any]]:
    """The gateway's outbox, read as a second SQLite reader."""
    with sqlite3.connect(gateway.data_dir / "outbox.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM steps ORDER BY id")]


def send_series(orthanc: Orthanc, shared_data: Path, folder: Path) -> str:
    """A new CT series into Orthanc, then from Orthanc to the gateway; its SeriesInstanceUID."""
    files = ct_series(shared_data, folder)
    orthanc_id = orthanc.upload(files)
    answer = orthanc.send(MODALITY, orthanc_id)
    assert answer.get("FailedInstancesCount", 0) == 0, answer
    return str(orthanc.get(f"/series/{orthanc_id}")["MainDicomTags"]["SeriesInstanceUID"])


def test_series_from_orthanc_comes_back_as_seg(
    gateway_factory: Callable[..., GatewayProcess], orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    gateway = gateway_factory("--allowed-callers", "ORTHANC")
    series_uid = send_series(orthanc, shared_data, tmp_path / "ct")

    segs = wait_for("a SEG in Orthanc", lambda: orthanc.results_for(series_uid), timeout=180)
    assert len(segs) == 1
    seg = segs[0]
    assert seg["Modality"] == "SEG"
    assert seg["ReferencedSeriesSequence"][0]["SeriesInstanceUID"] == series_uid
    rows = outbox_rows(gateway)
    assert [(r["kind"], r["state"]) for r in rows] == [
        ("upload", "done"),
        ("segment", "done"),
        ("wait", "done"),
        ("deliver", "done"),
    ]
    assert not list((gateway.data_dir / "batches").iterdir())  # tidied once delivered
