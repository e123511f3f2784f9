"""worker/runners/segment.py and export.py: an output is recorded with its file, even when a failed request
that had created the same file removes it between the worker's store and its record."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import blobs
from core.context import Context
from tests.service.helpers import series_with_uids
from tests.worker.jobs import job, queue_segmentation, segmentation
from worker.predictors import PredictorCache
from worker.runners.export import export
from worker.runners.segment import segment


@pytest.fixture
def segmentation_id(ctx: Context, shared_data: Path, tmp_path: Path) -> str:
    """A stored DICOM series (exportable) and its segmentation, queued (no worker runs it)."""
    return queue_segmentation(ctx, series_with_uids(shared_data, tmp_path / "series"), tmp_path / "upload")


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
    segment(
        ctx, job(ctx, segmentation(ctx, segmentation_id).job_id), lambda *_: None, PredictorCache(size=1, device="cpu")
    )
    export(ctx, job(ctx, segmentation(ctx, segmentation_id).export_job_id), lambda *_: None)
    outputs = dict(segmentation(ctx, segmentation_id).outputs)
    assert set(outputs) == {"nifti", "dicom-seg", "rtstruct"}
    assert discarded == set(outputs.values())
    for fmt, sha in outputs.items():
        assert ctx.store.exists(sha), f"{fmt} recorded without its file"
