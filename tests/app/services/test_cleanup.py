"""app/services/cleanup.py: which leftovers the sweep removes, and what it must keep (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.services import cleanup
from core.context import Context, build_context
from core.records import studies as records
from core.records.projects import DEFAULT
from core.records.tables import Job, ModelVersion, now
from core.settings import Settings
from core.storage import staging_folder
from tests.service.harness import FAST
from tests.service.postgres import database_url

HOUR = 3600.0
AGES = {"upload_abandoned_after_s": HOUR, "orphan_blob_after_s": HOUR}


def _age(path: Path, seconds: float) -> Path:
    """Set the times of ``path`` and of everything under it ``seconds`` back."""
    stamp = time.time() - seconds
    for item in [*path.rglob("*"), path] if path.is_dir() else [path]:
        os.utime(item, (stamp, stamp), follow_symlinks=False)
    return path


def _folder(root: Path, name: str, age: float, content: bytes = b"x" * 100) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "00000_1.2.840.99.1.dcm").write_bytes(content)
    return _age(folder, age)


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    with database_url(request.param) as url:
        settings = Settings(data_dir=tmp_path / "data", **FAST, **AGES, **({"database_url": url} if url else {}))
        context = build_context(settings)
        try:
            yield context
        finally:
            context.db.engine.dispose()


def _job(ctx: Context, state: str, finished_ago: float | None, kind: str = "finetune") -> str:
    with ctx.db.session() as session:
        finished = now() - dt.timedelta(seconds=finished_ago) if finished_ago is not None else None
        job = Job(kind=kind, project=DEFAULT, payload={}, state=state, finished_at=finished)
        session.add(job)
        session.flush()
        return job.id


def test_staging_folders_go_when_nothing_touched_them_for_the_bound(tmp_path: Path):
    old = _folder(tmp_path, "upload-old", 2 * HOUR)
    image = _folder(tmp_path, "ui-image-old", 2 * HOUR)
    writing = _folder(tmp_path, "upload-writing", 2 * HOUR)
    _age(writing / "00000_1.2.840.99.1.dcm", 10)  # a file still being written: the folder is live
    live = _folder(tmp_path, "upload-live", 2 * HOUR)  # this process's request in progress
    fresh = _folder(tmp_path, "upload-fresh", 10)
    unknown = _folder(tmp_path, "notes", 2 * HOUR)  # not the service's: never touched
    found = cleanup.abandoned_staging(tmp_path, time.time() - HOUR, {live})
    assert found == [image, old]
    assert {writing, live, fresh, unknown}.isdisjoint(found)


def test_staging_folder_is_live_while_in_use(tmp_path: Path):
    with staging_folder(tmp_path) as folder:
        _age(folder, 2 * HOUR)
        assert cleanup.abandoned_staging(tmp_path, time.time() - HOUR, cleanup.live_staging()) == []
    assert not folder.exists()


@pytest.mark.parametrize(
    ("state", "finished_ago", "gone"),
    [
        ("succeeded", 600, True),
        ("failed", 600, True),
        ("cancelled", 600, True),
        ("cancelled", 1, False),  # its worker may still be stopping
        ("running", None, False),
        ("queued", None, False),
    ],
)
def test_finished_jobs_by_state_and_time(state: str, finished_ago: float | None, gone: bool):
    stamp = now()
    done = stamp - dt.timedelta(seconds=finished_ago) if finished_ago is not None else None
    before = stamp - dt.timedelta(seconds=60)
    assert (cleanup.finished_jobs({"j": (state, done)}, before, ("succeeded", "failed", "cancelled")) == {"j"}) == gone


def test_old_blobs_are_old_well_named_and_not_in_flight(tmp_path: Path):
    def blob(content: bytes, age: float, name: str | None = None) -> str:
        sha = name or hashlib.sha256(content).hexdigest()
        path = tmp_path / sha[:2] / sha
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        _age(path, age)
        return sha

    old, in_flight = blob(b"old", 2 * HOUR), blob(b"uploading", 2 * HOUR)
    blob(b"fresh", 10)
    (tmp_path / ".tmp").mkdir()
    _age(tmp_path / ".tmp", 2 * HOUR)
    blob(b"not a blob", 2 * HOUR, name="ab" + "x" * 62)
    assert cleanup.old_blobs(tmp_path, time.time() - HOUR, {in_flight}) == [old]


def test_the_sweep_removes_leftovers_and_keeps_what_is_in_use(
    ctx: Context, caplog: pytest.LogCaptureFixture, ct_nifti: tuple[Path, Path]
):
    settings, work, store = ctx.settings, ctx.settings.work_dir, ctx.store
    cancelled, running = _job(ctx, "cancelled", 600), _job(ctx, "running", None, kind="pretrain")
    just_cancelled, failed, registered = _job(ctx, "cancelled", 1), _job(ctx, "failed", 600), _job(ctx, "failed", 600)
    gone = [
        _folder(work, f"finetune-{cancelled}-a1", 10),
        _folder(work, f"segment-{'0' * 32}-b2", 2 * HOUR),  # a job with no record, untouched for long
        _folder(work, "upload-k1", 2 * HOUR),
        _folder(settings.model_dir / "projects" / DEFAULT / "m", f"job-{failed}", 600),
        _folder(settings.model_dir / "projects" / DEFAULT / "m", f".job-{failed}-x9", 600),  # save_model's staging
    ]
    models = settings.model_dir / "projects" / DEFAULT / "m"
    kept = [
        _folder(work, f"pretrain-{running}-c3", 2 * HOUR),
        _folder(work, f"finetune-{just_cancelled}-d4", 2 * HOUR),
        _folder(work, f"segment-{'1' * 32}-e5", 10),
        _folder(work, "upload-k2", 10),
        _folder(models, f"job-{registered}", 600),
        _folder(models, f"job-{cancelled}-notes", 600),  # not a name the service makes
    ]
    with ctx.db.session() as session:
        version = {"name": "m", "version": 1, "kind": "segmentation", "card": {}, "job_id": registered}
        session.add(ModelVersion(project=DEFAULT, path=str(models / f"job-{registered}"), **version))
    recorded, _ = store.put_file(ct_nifti[1])
    with ctx.db.session() as session:
        records.add_blobs(session, {recorded: 1})
    orphan, young = store.put_stream(io.BytesIO(b"killed before its record")), store.put_stream(io.BytesIO(b"young"))
    for sha in (recorded, orphan[0]):
        _age(store.path(sha), 2 * HOUR)
    tmp_old, tmp_fresh = store.tmp / "tmpold", store.tmp / "tmpfresh"
    tmp_old.write_bytes(b"half a result")
    tmp_fresh.write_bytes(b"being written")
    _age(tmp_old, 2 * HOUR)
    # An upload in progress in this process: its old-looking blob stays.
    with caplog.at_level(logging.INFO, logger="app.services.cleanup"), store.undo_on_error():
        uploading, _ = store.put_stream(io.BytesIO(b"in flight"))
        _age(store.path(uploading), 2 * HOUR)
        swept = cleanup.sweep(ctx)
        with ctx.db.session() as session:  # ... until its request records it
            records.add_blobs(session, {uploading: 9})
    assert [p for p in gone if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert {sha for sha in (recorded, orphan[0], young[0], uploading) if store.exists(sha)} == {
        recorded,
        young[0],
        uploading,
    }
    assert (tmp_old.exists(), tmp_fresh.exists()) == (False, True)
    assert swept.counts == {
        "job work folders": 2,
        "model folders of jobs that registered nothing": 2,
        "abandoned staging folders": 1,
        "temporary blob files": 1,
        "unrecorded blob files": 1,
    }
    assert swept.bytes == 5 * 100 + len(b"half a result") + len(b"killed before its record")
    logged = caplog.text
    assert "removed 1 abandoned staging folders" in logged
    assert "1.2.840" not in logged
    assert orphan[0] not in logged
    assert cleanup.sweep(ctx).counts == {}  # nothing left to do


def test_the_sweeper_sweeps_at_start_and_stops(ctx: Context):
    leftover = _folder(ctx.settings.work_dir, "upload-z", 2 * HOUR)
    sweeper = cleanup.Sweeper(ctx)
    sweeper.start()
    deadline = time.monotonic() + 10
    while leftover.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    sweeper.stop()
    assert not leftover.exists()
    assert not sweeper._thread.is_alive()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("cleanup_interval_s", 0),
        ("cleanup_interval_s", 86_401),
        ("upload_abandoned_after_s", 0.5),
        ("orphan_blob_after_s", -1),
        ("orphan_blob_after_s", 31 * 86_400),
    ],
)
def test_cleanup_settings_have_ranges(tmp_path: Path, variable: str, value: float):
    with pytest.raises(ValidationError, match=variable):
        Settings(data_dir=tmp_path, **{variable: value})
