"""worker/runners/segment.py and export.py on a real series: the upload checks its pixel data, the segment job
decodes them once, the export job not at all, and the export's DICOM SEG and RTSTRUCT are those written from
the decoded series and the stored label map."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from core.context import Context
from core.records.tables import ModelVersion
from lrc.io import dicom_read as dicom_read_module
from lrc.io import read_nifti, read_volume
from lrc.io.geometry import align_to
from lrc.io.seg import read_seg
from lrc.model_dirs.card import ModelCard
from lrc.writers import DICOM_SEG, NIFTI, get_writer, writer_names
from tests import dicom_factory
from tests.dicom_outputs import normalised_bytes
from tests.worker.jobs import job, queue_segmentation, segmentation
from worker.predictors import PredictorCache
from worker.runners.export import export
from worker.runners.segment import segment


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Calls of the DICOM reader's pixel decoding (``read_planes``) and checking (``check_planes``: compressed
    planes decoded one at a time, uncompressed ones checked by their length), by name."""
    counts: Counter[str] = Counter()
    for name in ("read_planes", "check_planes"):
        original = getattr(dicom_read_module, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(dicom_read_module, name, counted)
    return counts


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, JPEG2000Lossless], ids=["explicit", "jpeg2000"])
def test_pixels_are_decoded_once_and_the_export_writes_what_the_decoded_series_gives(
    ctx: Context, shared_data: Path, tmp_path: Path, decodes: Counter[str], syntax: str
):
    paths = dicom_factory.write_series(
        shared_data,
        tmp_path / "series",
        dicom_factory.line(12, spacing=5.0),
        size=64,
        pixel_spacing=(3.0, 3.0),
        transfer_syntax=syntax,
    )
    segmentation_id = queue_segmentation(ctx, paths, tmp_path / "upload")
    assert decodes == Counter({"check_planes": 1})  # the upload's check, holding one plane at a time
    decodes.clear()
    segment(
        ctx, job(ctx, segmentation(ctx, segmentation_id).job_id), lambda *_: None, PredictorCache(size=1, device="cpu")
    )
    assert decodes == Counter({"read_planes": 1})
    decodes.clear()
    seg = segmentation(ctx, segmentation_id)
    export(ctx, job(ctx, seg.export_job_id), lambda *_: None)
    assert not decodes

    outputs = segmentation(ctx, segmentation_id).outputs
    assert set(outputs) == {NIFTI.name, *writer_names(needs_dicom=True)}
    with ctx.db.session() as session:
        version = session.get(ModelVersion, seg.model_version_id)
        assert version is not None
        table = ModelCard.from_json(version.card).labels
    assert table is not None
    image = read_volume(paths)
    stored = ctx.store.materialize([(f"labels{NIFTI.extension}", outputs[NIFTI.name])], tmp_path / "labels")
    labels = read_nifti(stored[0])
    assert len(np.unique(labels.array)) > 1  # the model found something: frames and contours to compare
    for fmt in writer_names(needs_dicom=True):
        writer = get_writer(fmt)
        decoded = writer.write(labels, tmp_path / f"decoded-{writer.filename}", image, table)
        assert normalised_bytes(ctx.store.path(outputs[fmt])) == normalised_bytes(decoded), fmt
    back = read_seg(ctx.store.path(outputs[DICOM_SEG.name]), image).label_map().array  # segment numbers
    assert_array_equal(np.array([0, *table])[back], align_to(labels, image).array)
