"""Received instances on disk: durable per series, complete after the timeout, picked up after a restart."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pydicom
import pytest

from gateway.inbox import Inbox, valid_uid
from tests.gateway.conftest import ct_series


def store_all(inbox: Inbox, files: list[Path]) -> str:
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        inbox.store(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), path.read_bytes())
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)


@pytest.mark.parametrize(
    ("uid", "valid"),
    [("1.2.840.10008.5.1.4.1.1.2", True), ("1", True), ("1..2", False), ("../etc", False), ("1." * 40, False)],
)
def test_only_dicom_uids_become_file_names(uid: str, valid: bool):
    assert valid_uid(uid) is valid


def test_instances_are_stored_as_received_and_complete_after_the_timeout(shared_data: Path, tmp_path: Path):
    inbox = Inbox(tmp_path / "gw", series_timeout=5)
    files = ct_series(shared_data, tmp_path / "ct", count=3)
    series_uid = store_all(inbox, files)
    stored = sorted((inbox.incoming / series_uid).iterdir())
    assert sorted(p.read_bytes() for p in stored) == sorted(p.read_bytes() for p in files)
    assert inbox.complete(time.time() + 1) == []
    (batch,) = inbox.complete(time.time() + 6)
    assert batch.series_uid == series_uid
    assert len(list(batch.folder.glob("*.dcm"))) == 3
    assert not (inbox.incoming / series_uid).exists()
    assert inbox.batches() == [batch]
    assert series_uid not in inbox.pending()
    # A late instance of the same series starts a new batch.
    store_all(inbox, files[:1])
    (late,) = inbox.complete(time.time() + 6)
    assert late.id != batch.id
    assert late.series_uid == series_uid


def test_invalid_uid_is_refused(shared_data: Path, tmp_path: Path):
    inbox = Inbox(tmp_path / "gw", series_timeout=5)
    with pytest.raises(ValueError, match="invalid UID"):
        inbox.store("1.2.3", "../../evil", b"\0")
    assert not list(inbox.incoming.iterdir())


def test_a_restarted_inbox_knows_the_series_still_receiving(shared_data: Path, tmp_path: Path):
    first = Inbox(tmp_path / "gw", series_timeout=5)
    series_uid = store_all(first, ct_series(shared_data, tmp_path / "ct", count=2))
    long_ago = time.time() - 60
    for path in (first.incoming / series_uid).iterdir():
        os.utime(path, (long_ago, long_ago))
    (first.tmp / ".part-crashed").write_bytes(b"half")  # never acknowledged

    again = Inbox(tmp_path / "gw", series_timeout=5)
    assert again.pending()[series_uid] == pytest.approx(long_ago, abs=1)
    assert not list(again.tmp.iterdir())
    (batch,) = again.complete()
    assert len(list(batch.folder.iterdir())) == 2
