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

from tests.gateway.conftest import MODALITY, GatewayProcess, LrcService, ct_series
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
    gateway_factory: Callable[..., GatewayProcess],
    lrc_service: LrcService,
    orthanc: Orthanc,
    shared_data: Path,
    tmp_path: Path,
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
    log = gateway.log.read_text(errors="replace")  # the gateway ran with -v: INFO lines about this batch
    received_at, _, uid = rows[0]["batch"].partition("-")  # a batch id holds the series UID
    assert uid == series_uid
    assert f"batch {received_at}-[uid]: segmentation" in log  # the lines about it, its UID redacted
    assert series_uid not in log
    assert lrc_service.key not in log


def test_results_by_stow_rs_with_rtstruct(
    gateway_factory: Callable[..., GatewayProcess], orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    gateway = gateway_factory("--rtstruct", stow=True)
    series_uid = send_series(orthanc, shared_data, tmp_path / "ct")

    segs = wait_for("a SEG in Orthanc", lambda: orthanc.results_for(series_uid), timeout=180)
    structs = wait_for("an RTSTRUCT in Orthanc", lambda: orthanc.results_for(series_uid, "RTSTRUCT"), timeout=60)
    assert (len(segs), len(structs)) == (1, 1)
    delivered = [r for r in outbox_rows(gateway) if r["kind"] == "deliver"]
    assert sorted(r["key"].split(":")[1] for r in delivered) == ["dicom-seg", "rtstruct"]
    assert {r["state"] for r in delivered} == {"done"}


def test_orthanc_down_when_the_result_is_due(
    gateway_factory: Callable[..., GatewayProcess], orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    gateway = gateway_factory()
    series_uid = send_series(orthanc, shared_data, tmp_path / "ct")
    orthanc.stop()
    try:
        failed = wait_for(
            "a failed delivery",
            lambda: [r for r in outbox_rows(gateway) if r["kind"] == "deliver" and r["attempts"] >= 2],
            timeout=180,
        )
        assert failed[0]["state"] == "pending"
        assert "could not be reached" in failed[0]["last_error"]
    finally:
        orthanc.start()
    segs = wait_for("the SEG after Orthanc came back", lambda: orthanc.results_for(series_uid), timeout=60)
    assert len(segs) == 1


def test_gateway_restarts_lose_nothing_and_send_once(
    gateway_factory: Callable[..., GatewayProcess], orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    gateway = gateway_factory()
    series_uid = send_series(orthanc, shared_data, tmp_path / "ct")
    gateway.stop(kill=True)  # a crash before the series was complete (timeout 1 s)
    received = list((gateway.data_dir / "incoming" / series_uid).glob("*.dcm"))
    assert len(received) == 8  # every acknowledged instance is on disk

    orthanc.stop()
    try:
        gateway.start()  # picks the series up from disk; delivery fails while Orthanc is down
        wait_for(
            "a failed delivery",
            lambda: [r for r in outbox_rows(gateway) if r["kind"] == "deliver" and r["attempts"] >= 1],
            timeout=180,
        )
        gateway.stop(kill=True)  # a crash with a delivery pending in the outbox
    finally:
        orthanc.start()
    gateway.start()
    wait_for(
        "the delivery after the restart",
        lambda: [r for r in outbox_rows(gateway) if r["kind"] == "deliver" and r["state"] == "done"],
        timeout=60,
    )
    assert len(orthanc.results_for(series_uid)) == 1
    assert [(r["kind"], r["state"]) for r in outbox_rows(gateway)] == [
        ("upload", "done"),
        ("segment", "done"),
        ("wait", "done"),
        ("deliver", "done"),
    ]
    with sqlite3.connect(gateway.data_dir / "outbox.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM delivered").fetchone()[0] == 1
