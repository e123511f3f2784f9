"""Queued jobs for the runner tests, which run them in the test's process (no worker, no queue)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.services import segmentations, studies
from core.context import Context
from core.records.projects import DEFAULT
from core.records.tables import Job, Segmentation
from tests.service.fixtures import MODEL


def queue_segmentation(ctx: Context, paths: list[Path], folder: Path) -> str:
    """Upload ``paths`` as a study (validated as the API validates it) and queue a segmentation of its first
    series with the production model; the segmentation's id."""
    uploads = [studies.Upload(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]
    study, _ = studies.ingest(ctx, uploads, folder, None, DEFAULT)
    seg, _ = segmentations.create(ctx, study.series[0].id, f"{MODEL}:1", None, DEFAULT)
    return seg.id


def segmentation(ctx: Context, segmentation_id: str) -> Segmentation:
    """The segmentation's row, detached."""
    with ctx.db.session() as session:
        seg = session.get(Segmentation, segmentation_id)
        assert seg is not None
        session.expunge(seg)
    return seg


def job(ctx: Context, job_id: str | None) -> Job:
    """The job's row, detached, as a worker would get it."""
    assert job_id is not None
    with ctx.db.session() as session:
        found = session.get(Job, job_id)
        assert found is not None
        session.expunge(found)
    return found
