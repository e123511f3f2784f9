"""RTSTRUCT in: our own RTSTRUCTs read back onto the real CT they were drawn on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from lrc.io import SegmentationFormatError, read_volume
from lrc.io.labels import LabelTable
from lrc.io.rtstruct import write_rtstruct
from lrc.io.rtstruct_read import read_rois, read_rtstruct, referenced_series
from lrc.io.seg import read_seg
from lrc.io.volume import Volume
from tests.dicom_factory import line
from tests.io.test_rtstruct import dice


@pytest.fixture
def ct(shared_data: Path) -> Volume:
    return read_volume(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")


def test_round_trip_on_the_real_ct(ct: Volume, shared_data: Path, tmp_path: Path):
    liver = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", ct).label_map().array == 1
    labels = np.where(ct.array > -500, 1, 0).astype(np.uint8)  # body on the real pixels
    labels[liver] = 2
    table = LabelTable.from_names({1: "body", 2: "liver"})
    path = write_rtstruct(ct.with_array(labels), ct, table, tmp_path / "rt.dcm")

    back, read_table = read_rtstruct(path, ct)
    assert back.shape == ct.shape
    np.testing.assert_allclose(back.affine, ct.affine)
    assert {v: read_table[v].name for v in read_table} == {1: "body", 2: "liver"}
    assert read_table[2].color == table[2].color
    for value in (1, 2):
        assert dice(back.array == value, labels == value) > 0.97, value
    assert referenced_series(pydicom.dcmread(path)) == {ct.source.series_instance_uid}


def test_names_choose_values_and_others_are_left_out(ct: Volume, shared_data: Path, tmp_path: Path):
    liver = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", ct).label_map()
    path = write_rtstruct(liver, ct, LabelTable.from_names({1: "liver"}), tmp_path / "rt.dcm")
    back, table = read_rtstruct(path, ct, {"liver": 6, "spleen": 1})
    assert list(table) == [6]
    assert set(np.unique(back.array)) == {0, 6}
    nothing, empty = read_rtstruct(path, ct, {"spleen": 1})
    assert len(empty) == 0
    assert not nothing.array.any()


def _ring(make_series, tmp_path: Path) -> tuple[Volume, np.ndarray, Path]:
    """A ring on slice 1 of a 3-slice series (outer contour + hole), written as our RTSTRUCT."""
    image = read_volume(make_series(line(3)))
    array = np.zeros(image.shape, dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    radius = np.hypot(xx - 30, yy - 30)
    array[..., 1][(radius < 20) & (radius > 8)] = 1
    path = write_rtstruct(image.with_array(array), image, LabelTable.from_names({1: "ring"}), tmp_path / "rt.dcm")
    return image, array, path


def test_holes_by_even_odd(make_series, tmp_path: Path):
    image, array, path = _ring(make_series, tmp_path)
    (roi,) = read_rois(path)
    assert len(roi.contours) == 2
    back, _ = read_rtstruct(path, image)
    assert not back.array[30, 30, 1]  # the hole stays empty
    assert dice(back.array == 1, array == 1) > 0.95


def test_contours_of_another_series_are_refused(ct: Volume, make_series, shared_data: Path, tmp_path: Path):
    liver = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", ct).label_map()
    path = write_rtstruct(liver, ct, LabelTable.from_names({1: "liver"}), tmp_path / "rt.dcm")
    other = read_volume(make_series(line(3, spacing=7.0)))
    with pytest.raises(SegmentationFormatError, match="slice"):
        read_rtstruct(path, other)
    with pytest.raises(SegmentationFormatError, match="not an RT Structure Set"):
        read_rtstruct(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", ct)


def test_closedplanar_xor_contours_are_read(make_series, tmp_path: Path):
    # PS3.3 C.8.8.6.3: CLOSEDPLANAR_XOR states the even-odd combination this reader applies anyway.
    image, array, path = _ring(make_series, tmp_path)
    ds = pydicom.dcmread(path)
    for contour in ds.ROIContourSequence[0].ContourSequence:
        contour.ContourGeometricType = "CLOSEDPLANAR_XOR"
    (roi,) = read_rois(ds)
    assert len(roi.contours) == 2
    back, _ = read_rtstruct(ds, image)
    assert not back.array[30, 30, 1]
    assert dice(back.array == 1, array == 1) > 0.95
