"""worker/execution.py Reporter: progress is throttled, but a stage's last report always lands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.context import Context, build_context
from core.records import jobs as records
from core.records.projects import DEFAULT
from core.records.tables import Job
from core.settings import Settings
from tests.service.harness import FAST
from worker.execution import JobCancelled, Reporter
from worker.runners.train import preparing, read_each


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = build_context(Settings(data_dir=tmp_path / "data", **FAST))
    try:
        yield context
    finally:
        context.db.engine.dispose()


def _running_job(ctx: Context) -> tuple[str, str]:
    with ctx.db.session() as session:
        job = Job(kind="finetune", project=DEFAULT, payload={})
        session.add(job)
        session.flush()
        job_id, token = job.id, job.dispatch_token
    with ctx.db.session() as session:
        assert records.claim(session, job_id, token, "w1") is not None
    return job_id, token


def _metrics(ctx: Context, job_id: str) -> object:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.metrics


def test_last_report_of_a_stage_is_kept_however_soon_it_comes(ctx: Context):
    # a 2-step training that ends within the interval: its final step must still be recorded
    job_id, token = _running_job(ctx)
    report = Reporter(ctx, job_id, token, interval=3600)
    report(0.05, "training")
    report(0.5, "training", {"step": 1, "steps": 2})
    assert _metrics(ctx, job_id) == {}  # throttled, as intended
    report(0.9, "training", {"step": 2, "steps": 2}, last=True)
    assert _metrics(ctx, job_id) == {"step": 2, "steps": 2}


def test_loading_stops_at_the_next_item_after_a_cancellation(ctx: Context):
    job_id, token = _running_job(ctx)
    report = Reporter(ctx, job_id, token, interval=0)  # every report asks (the worker's: every 0.5 s at most)
    read: list[int] = []

    def read_one(index: int, item: str) -> str:
        read.append(index)
        if index == 0:  # a user cancels while the first series is read
            with ctx.db.session() as session:
                records.cancel(session, job_id, DEFAULT)
        return item

    with pytest.raises(JobCancelled):
        read_each(report, ["series-0", "series-1", "series-2"], read_one)
    assert read == [0]


def test_preparing_reports_its_share_under_its_stage(ctx: Context):
    job_id, token = _running_job(ctx)
    report = Reporter(ctx, job_id, token)
    assert read_each(report, ["a", "b"], lambda index, item: item * (index + 1)) == ["a", "bb"]
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.stage, job.metrics, job.progress) == ("reading", {"read": 2, "of": 2}, pytest.approx(0.03))
    preparing(report)(1.0)
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.stage, job.metrics, job.progress) == ("preparing", {"prepared": 1.0}, pytest.approx(0.05))
