"""core/records/jobs.py and the recovery sweep: deliveries, cancellation, lost jobs, bounded attempts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import update

from core.context import Context
from core.dispatch import sweep
from core.errors import Conflict
from core.queue import JobQueue
from core.records import Database
from core.records import jobs as records
from core.records.tables import Job
from core.settings import Settings
from core.storage import BlobStore


class RecordingQueue(JobQueue):
    """The real queue class, recording sends instead of reaching a broker."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[tuple[str, str, str]] = []

    def dispatch(self, job_id: str, kind: str, token: str) -> None:
        self.sent.append((job_id, kind, token))


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings(data_dir=tmp_path, heartbeat_s=1, stale_after_s=5, max_attempts=2)
    settings.prepare()
    db = Database(settings.database_url)
    db.create_schema()
    return Context(settings, db, BlobStore(settings.blob_dir), RecordingQueue(settings))


def _job(ctx: Context) -> tuple[str, str]:
    with ctx.db.session() as session:
        job = records.create_job(session, "segment", {}, None, "default")
        return job.id, job.dispatch_token


def test_only_the_current_delivery_runs(ctx: Context):
    job_id, token = _job(ctx)
    with ctx.db.session() as session:
        assert records.claim(session, job_id, "stale-token", "w@h") is None
        claimed = records.claim(session, job_id, token, "w@h")
        assert claimed is not None
        assert claimed.state == "running"
        assert claimed.attempts == 1
        assert records.claim(session, job_id, token, "w@h") is None  # a redelivery of the same message
        assert records.record_progress(session, job_id, token, 0.5, "predicting") == "running"
        assert records.finish(session, job_id, token, "succeeded", {"ok": True})
        assert records.get_job(session, job_id, "default").progress == 1.0


def test_cancel_stops_progress_and_refuses_twice(ctx: Context):
    job_id, token = _job(ctx)
    with ctx.db.session() as session:
        records.claim(session, job_id, token, "w@h")
        assert records.cancel(session, job_id, "default").state == "cancelled"
        assert records.record_progress(session, job_id, token, 0.6, "training") == "cancelled"
        assert not records.finish(session, job_id, token, "succeeded")  # the outcome does not overwrite it
        with pytest.raises(Conflict, match="already cancelled"):
            records.cancel(session, job_id, "default")


def test_sweep_requeues_lost_jobs_then_gives_up(ctx: Context):
    job_id, token = _job(ctx)
    long_ago = records.now() - dt.timedelta(seconds=60)
    for attempt in (1, 2):
        with ctx.db.session() as session:
            assert records.claim(session, job_id, token, "dead@h") is not None
            session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=long_ago))
        counts = sweep(ctx)
        with ctx.db.session() as session:
            job = records.get_job(session, job_id, "default")
        if attempt == 1:
            assert counts["requeued"] == 1
            assert job.state == "queued"
            assert ctx.queue.sent[-1] == (job_id, "segment", job.dispatch_token)  # type: ignore[attr-defined]
            assert job.dispatch_token != token  # the old delivery is now a no-op
            token = job.dispatch_token
        else:
            assert counts["failed"] == 1
            assert job.state == "failed"
            assert "lost 2 time(s)" in (job.error or "")


def test_sweep_at_start_resends_queued_jobs_but_not_running_ones(ctx: Context):
    queued_id, _ = _job(ctx)
    running_id, running_token = _job(ctx)
    with ctx.db.session() as session:
        records.claim(session, running_id, running_token, "alive@h")
    counts = sweep(ctx, at_start=True)
    assert counts == {"requeued": 0, "failed": 0, "redispatched": 1}
    assert [s[0] for s in ctx.queue.sent] == [queued_id]  # type: ignore[attr-defined]
    with ctx.db.session() as session:
        assert records.get_job(session, running_id, "default").dispatch_token == running_token


def test_model_jobs_competing_with_a_worker_for_its_machine(db: Database):
    """What lets a worker lend idle CPUs to its model job (worker.threads.lend_idle_cpus), on both databases."""
    queue_of = {"segment": "infer", "finetune": "train", "pretrain": "train"}
    seen_after = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with db.session() as session:
        for worker, queues in (("infer@node-a", "infer,io"), ("train@node-a", "train"), ("train@node-b", "train")):
            records.beat(session, worker, queues)

    def create(kind: str) -> tuple[str, str]:
        with db.session() as session:
            job = records.create_job(session, kind, {}, None, "default")
            return job.id, job.dispatch_token

    def start(kind: str, worker: str) -> tuple[str, str]:
        job_id, token = create(kind)
        with db.session() as session:
            assert records.claim(session, job_id, token, worker) is not None
        return job_id, token

    def competing(worker: str) -> int:
        with db.session() as session:
            return records.competing(session, worker, queue_of, seen_after)

    assert competing("infer@node-a") == 0
    start("segment", "infer@node-a")  # its own job does not count
    start("export", "train@node-a")  # not a model job
    start("finetune", "train@node-b")  # another machine
    assert competing("infer@node-a") == 0
    job_id, token = start("pretrain", "train@node-a")
    assert competing("infer@node-a") == 1
    assert competing("train@node-a") == 1  # the segmentation beside it
    with db.session() as session:
        assert records.finish(session, job_id, token, "succeeded")
    assert competing("infer@node-a") == 0
    create("segment")  # queued for infer: only this machine's infer worker takes it, itself
    assert competing("infer@node-a") == 0
    assert competing("train@node-a") == 2  # the running segmentation and the one its worker takes next
    create("finetune")  # queued for train: the machine's train worker may take it beside a segmentation
    assert competing("infer@node-a") == 1
    with db.session() as session:
        records.beat(session, "infer2@node-a", "infer")  # a second infer worker: the queued segmentation counts
    assert competing("infer@node-a") == 2
    start("pretrain", "train@nodeXa")
    assert competing("infer@node_a") == 0  # the host is matched exactly, not as a LIKE pattern
