"""``lrc.export``: DICOM SEG and RTSTRUCT of a finished segmentation, referencing its DICOM series.

The writers need the series' headers and grid, not its voxels: the series is read from its headers
(its pixel data, decoded by the segment job, are not decoded again), the label map from the NIfTI the
segment job stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import blobs
from core.context import Context
from core.instance_headers import describe
from core.records.instances import add_instance
from core.records.studies import get_series
from core.records.tables import Job, ModelVersion, ResultInstance, Segmentation
from lrc.io import read_nifti
from lrc.model_dirs.card import ModelCard
from lrc.writers import NIFTI, get_writer, writer_names
from worker.execution import Reporter
from worker.runners.common import read_series_headers, scratch


def export(ctx: Context, job: Job, report: Reporter) -> dict[str, Any]:
    """Write the requested DICOM formats of a segmentation, each stored atomically and recorded for DICOMweb.

    Each format is recorded as soon as it is written (a SEG can be downloaded while the RTSTRUCT is
    still being drawn); a redelivered job skips the formats already recorded, so none is written twice.
    """
    segmentation_id = job.payload["segmentation_id"]
    dicom = writer_names(needs_dicom=True)
    formats = [f for f in job.payload.get("formats", list(dicom)) if f in dicom]
    with ctx.db.session() as session:
        seg = session.get(Segmentation, segmentation_id)
        if seg is None or seg.project != job.project or NIFTI.name not in seg.outputs:
            raise ValueError(f"segmentation {segmentation_id} has no label map to export")
        series = get_series(session, seg.series_id, job.project)
        version = session.get(ModelVersion, seg.model_version_id)
        assert version is not None
        nifti = seg.outputs[NIFTI.name]
        todo = [f for f in formats if f not in seg.outputs]
    table = ModelCard.from_json(version.card).labels
    assert table is not None
    if todo:
        with scratch(ctx, f"export-{job.id}-") as folder:
            report(0.1, "reading series headers")
            image = read_series_headers(ctx, series, folder)
            labels = read_nifti(ctx.store.materialize([(f"labels{NIFTI.extension}", nifti)], folder / "labels")[0])
            for number, fmt in enumerate(todo):
                report(0.2 + 0.7 * number / len(todo), f"writing {fmt}")
                writer = get_writer(fmt)
                written = writer.write(labels, Path(folder) / writer.filename, image, table)
                sha, _ = ctx.store.put_file(written)
                _record(
                    ctx, segmentation_id, fmt, written, sha, describe(written, segmentation_id, fmt, sha, job.project)
                )
    return {"segmentation_id": segmentation_id, "formats": formats}


def _record(ctx: Context, segmentation_id: str, fmt: str, written: Path, sha: str, instance: ResultInstance) -> None:
    """Record one written format: its blob, the segmentation's output and the DICOMweb instance.

    Called while ``written`` (stored as ``sha``) exists: :func:`core.blobs.record` stores it again
    if a failed request of the same content removed the blob meanwhile.
    """
    with ctx.db.session() as session:
        seg = session.get(Segmentation, segmentation_id)
        if seg is None:
            raise ValueError(f"segmentation {segmentation_id} was deleted")
        blobs.record(session, ctx.store, {sha: written})
        seg.outputs = {**seg.outputs, fmt: sha}
        add_instance(session, instance)
