"""worker/runners/segment.py and export.py: an output is recorded with its file, even when a failed request
that had created the same file removes it between the worker's store and its record."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services import segmentations, studies
from app.services.model_versions import register_directory
from core import blobs
from core.context import Context, build_context
from core.records.projects import DEFAULT
from core.records.tables import Job, Segmentation
from core.settings import Settings
from tests.service.fixtures import MODEL
from tests.service.harness import FAST
from tests.service.helpers import series_with_uids
from worker.predictors import PredictorCache
from worker.runners.export import export
from worker.runners.segment import segment


@pytest.fixture
def ctx(tmp_path: Path, tiny_model: Path) -> Iterator[Context]:
    context = build_context(Settings(data_dir=tmp_path / "data", **FAST))
    register_directory(context, MODEL, tiny_model, DEFAULT, status="production")
    try:
        yield context
    finally:
        context.db.engine.dispose()


@pytest.fixture
def segmentation_id(ctx: Context, shared_data: Path, tmp_path: Path) -> str:
    """A stored DICOM series (exportable) and its segmentation, queued (no worker runs it)."""
    paths = series_with_uids(shared_data, tmp_path / "series")
    uploads = [studies.Upload(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]
    study, _ = studies.ingest(ctx, uploads, tmp_path / "upload", None, DEFAULT)
    seg, _ = segmentations.create(ctx, study.series[0].id, f"{MODEL}:1", None, DEFAULT)
    return seg.id


def _job(ctx: Context, job_id: str | None) -> Job:
    assert job_id is not None
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
    return job


def test_outputs_removed_by_a_failed_request_before_their_record_are_stored_again(
    ctx: Context, segmentation_id: str, monkeypatch: pytest.MonkeyPatch
):
    """Each output file the worker stores is found by a failed request that had created the same content;
    that request removes it (no row yet) before the worker records the output."""
    put_file = ctx.store.put_file
    discarded: set[str] = set()

    def stored_then_discarded(source: Path) -> tuple[str, int]:
        sha, size = put_file(source)
        if sha not in discarded:  # once: the failed request, creator of the file as far as it knows
            discarded.add(sha)
            blobs.discard(ctx, [sha])
        return sha, size

    monkeypatch.setattr(ctx.store, "put_file", stored_then_discarded)
    with ctx.db.session() as session:
        seg = session.get(Segmentation, segmentation_id)
        assert seg is not None
        job_id = seg.job_id
    segment(ctx, _job(ctx, job_id), lambda *_: None, PredictorCache(size=1, device="cpu"))
    with ctx.db.session() as session:
        seg = session.get(Segmentation, segmentation_id)
        assert seg is not None
        export_job_id = seg.export_job_id
    export(ctx, _job(ctx, export_job_id), lambda *_: None)
    with ctx.db.session() as session:
        seg = session.get(Segmentation, segmentation_id)
        assert seg is not None
        outputs = dict(seg.outputs)
    assert set(outputs) == {"nifti", "dicom-seg", "rtstruct"}
    assert discarded == set(outputs.values())
    for fmt, sha in outputs.items():
        assert ctx.store.exists(sha), f"{fmt} recorded without its file"
