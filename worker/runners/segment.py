"""``lrc.segment``: predict a label map for a series, store it as NIfTI, queue the DICOM export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import blobs
from core.context import Context
from core.dispatch import dispatch
from core.records import jobs as job_records
from core.records.studies import get_series
from core.records.tables import Job, ModelVersion, Segmentation
from lrc.model_dirs.card import tile_option
from lrc.writers import NIFTI, writer_names
from worker.execution import Reporter
from worker.predictors import PredictorCache
from worker.runners.common import read_series, scratch


def segment(ctx: Context, job: Job, report: Reporter, predictors: PredictorCache) -> dict[str, Any]:
    """Run the segmentation ``job.payload["segmentation_id"]``; idempotent (a re-run stores the same file)."""
    segmentation_id = job.payload["segmentation_id"]
    with ctx.db.session() as session:
        seg = session.get(Segmentation, segmentation_id)
        if seg is None or seg.project != job.project:
            raise ValueError(f"segmentation {segmentation_id} was deleted")
        series = get_series(session, seg.series_id, job.project)
        version = session.get(ModelVersion, seg.model_version_id)
        assert version is not None
    report(0.05, "loading model")
    # the request's field of view (None: the card's), on the cached network
    predictor = predictors.get(version.id, Path(version.path)).with_tile(tile_option(job.payload.get("tiles")))
    table = predictor.card.labels
    assert table is not None
    export: Job | None = None
    with scratch(ctx, f"segment-{job.id}-") as folder:
        report(0.15, "reading series")
        image = read_series(ctx, series, folder)
        report(0.3, "predicting")
        labels = predictor.predict(image)
        voxels = {table[v].name: int((labels.array == v).sum()) for v in table}
        report(0.85, "storing")
        written = NIFTI.write(labels, folder / f"labels{NIFTI.extension}")
        sha, _ = ctx.store.put_file(written)
        # Recorded while the file is in scratch still: blobs.record stores it again if a failed request
        # removed it meanwhile.
        with ctx.db.session() as session:
            blobs.record(session, ctx.store, {sha: written})
            seg = session.get(Segmentation, segmentation_id)
            if seg is None:
                raise ValueError(f"segmentation {segmentation_id} was deleted")
            seg.outputs = {**seg.outputs, NIFTI.name: sha}
            if series.exportable and seg.export_job_id is None:
                export = job_records.create_job(
                    session,
                    "export",
                    {"segmentation_id": seg.id, "formats": list(writer_names(needs_dicom=True))},
                    job.created_by,
                    job.project,
                )
                seg.export_job_id = export.id
    if export is not None:
        dispatch(ctx, export.id, export.kind, export.dispatch_token)
    return {"segmentation_id": segmentation_id, "formats": [NIFTI.name], "voxels": voxels, "tile": predictor.tile}
