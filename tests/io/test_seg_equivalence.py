"""The fast SEG writer against the straightforward highdicom call it replaced, on a real series.

The reference is the straightforward writer: highdicom given the strided ``Z x rows x
columns`` view of the label map. Both files must be the same bytes once the values that differ
between any two runs (new UIDs, creation times) are set to fixed ones: every module, every frame
(and which empty frames are left out), every reference and the packed pixel data.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from numpy.testing import assert_array_equal
from pydicom.sr.codedict import codes

import lrc
from lrc.io import Volume, read_volume
from lrc.io.labels import LabelTable
from lrc.io.seg import _describe, read_seg, source_header, write_seg
from tests.dicom_factory import line
from tests.dicom_outputs import normalised_bytes


def reference_seg(labels: Volume, image: Volume, table: LabelTable, kind: str, path: Path) -> Path:
    """The SEG as the straightforward highdicom call writes it (same arguments, strided frames)."""
    assert image.source is not None
    lut = np.zeros(int(max(labels.array.max(), max(table))) + 1, dtype=np.uint8)
    for number, value in enumerate(table, start=1):
        lut[value] = number
    algorithm = hd.AlgorithmIdentificationSequence(
        name="LRC", family=codes.cid7162.ArtificialIntelligence, version=lrc.__version__
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        seg = hd.seg.Segmentation(
            source_images=[source_header(h) for h in image.source.headers],
            pixel_array=lut[labels.array].transpose(2, 1, 0),
            segmentation_type=hd.seg.SegmentationTypeValues[kind.upper()],
            segment_descriptions=[_describe(n, table[v], algorithm) for n, v in enumerate(table, start=1)],
            series_instance_uid=hd.UID(),
            series_number=901,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="LRC",
            manufacturer_model_name="lrc",
            software_versions=lrc.__version__,
            device_serial_number="none",
            series_description="LRC segmentation",
        )
    seg.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(params=["real", "generated"])
def ct(request: pytest.FixtureRequest, shared_data: Path, make_series) -> Volume:
    """dcmqi's real 3-slice CT, and a 16-slice series the factory builds from its first slice."""
    if request.param == "real":
        return read_volume(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")
    return read_volume(make_series(line(16)))


def tissue_labels(ct: Volume, values: tuple[int, int, int]) -> Volume:
    """Three classes thresholded from the real CT, with slices left empty so frames are omitted."""
    hu = ct.array
    array = np.zeros(hu.shape, dtype=np.uint8)
    array[(hu > -200) & (hu < 100)] = values[0]  # soft tissue
    array[hu >= 300] = values[1]  # bone
    array[hu < -900] = 0
    nz = hu.shape[2]
    array[..., : nz // 5] = 0  # no label at all: these slices are left out
    gone = array[..., nz // 3 : nz // 2 + 1]
    gone[gone == values[1]] = 0  # bone absent here: only its frames go
    array[20:40, 30:60, nz // 2 :] = values[2]  # a block on the last slices
    return ct.with_array(array)


@pytest.mark.parametrize("kind", ["binary", "labelmap"])
@pytest.mark.parametrize(
    ("values", "dtype"),
    [((1, 2, 3), np.uint8), ((1, 5, 52), np.uint8), ((1, 2, 3), np.int16)],
    ids=["consecutive", "gaps", "int16"],
)
def test_fast_writer_equals_the_previous_output(ct: Volume, tmp_path: Path, kind: str, values, dtype):
    labels = tissue_labels(ct, values)
    labels = labels.with_array(labels.array.astype(dtype))
    table = LabelTable.from_names(dict(zip(values, ("muscle", "bone", "liver"), strict=True)))
    fast = write_seg(labels, ct, table, tmp_path / "fast.dcm", segmentation_type=kind)  # type: ignore[arg-type]
    before = reference_seg(labels, ct, table, kind, tmp_path / "before.dcm")
    ours, theirs = pydicom.dcmread(fast), pydicom.dcmread(before)
    assert int(ours.NumberOfFrames) == int(theirs.NumberOfFrames)
    if kind == "binary":
        assert int(ours.NumberOfFrames) < 3 * ct.shape[2]  # empty frames were left out
    assert ours.PixelData == theirs.PixelData
    assert normalised_bytes(fast) == normalised_bytes(before)
    back = read_seg(fast, ct).label_map().array
    assert_array_equal(np.array([0, *values])[back], labels.array)
