"""RTSTRUCT out: valid per dciodvfy, and its contours rasterise back onto the label map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from skimage import measure
from skimage.draw import polygon

from lrc.io import SegmentationFormatError, read_volume
from lrc.io.labels import LabelTable
from lrc.io.rtstruct import _turns, write_rtstruct
from lrc.io.seg import read_seg
from tests.dicom_factory import line
from tests.io.test_seg import dciodvfy_errors


def rasterise(path: Path, image, roi_number: int) -> np.ndarray:
    """Fill the contours of one ROI on the image grid, combining a slice's contours by even-odd."""
    ds = pydicom.dcmread(path)
    index = {uid: k for k, uid in enumerate(image.source.sop_instance_uids)}
    inverse = np.linalg.inv(image.lps_affine)
    out = np.zeros(image.shape, dtype=bool)
    (item,) = [r for r in ds.ROIContourSequence if r.ReferencedROINumber == roi_number]
    for contour in item.ContourSequence:
        k = index[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        voxels = (np.column_stack([points, np.ones(len(points))]) @ inverse.T)[:, :3]
        assert np.allclose(voxels[:, 2], k, atol=1e-3)  # on the slice it references
        rr, cc = polygon(voxels[:, 0], voxels[:, 1], image.shape[:2])
        fill = np.zeros(image.shape[:2], dtype=bool)
        fill[rr, cc] = True
        out[:, :, k] ^= fill
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_liver_contours_on_real_slices(shared_data: Path, tmp_path: Path):
    image = read_volume(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")
    labels = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", image).label_map()
    path = write_rtstruct(labels, image, LabelTable.from_names({1: "liver"}), tmp_path / "rt.dcm")
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.Modality == "RTSTRUCT"
    assert ds.StructureSetROISequence[0].ROIName == "liver"
    assert ds.PatientID == image.source.attributes["PatientID"]
    assert dice(rasterise(path, image, 1), labels.array == 1) > 0.97


def test_ring_with_hole_and_two_labels(make_series, tmp_path: Path):
    image = read_volume(make_series(line(3)))
    array = np.zeros(image.shape, dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    radius = np.hypot(xx - 30, yy - 30)
    array[..., 1][(radius < 20) & (radius > 8)] = 2  # a ring: outer contour + hole
    array[50:60, 50:60, 2] = 7
    table = LabelTable.from_names({2: "aorta", 7: "spleen"})
    path = write_rtstruct(image.with_array(array), image, table, tmp_path / "rt.dcm")
    assert dciodvfy_errors(path) == []
    ring = rasterise(path, image, 1)
    assert not ring[30, 30, 1]  # the hole stays empty
    assert dice(ring, array == 2) > 0.9
    assert dice(rasterise(path, image, 2), array == 7) > 0.9


def shoelace(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def test_outlines_are_kept_exactly_by_their_turning_points(make_series, tmp_path: Path):
    image = read_volume(make_series(line(3)))
    array = np.zeros(image.shape, dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    array[..., 1][(np.hypot(xx - 30, yy - 30) < 20) & (np.hypot(xx - 30, yy - 30) > 8)] = 1  # staircase edges
    array[40:50, 5:60, 1] = 1
    inverse = np.linalg.inv(image.lps_affine)

    def polygons(tolerance: float) -> list[np.ndarray]:
        table = LabelTable.from_names(["ring"])
        path = write_rtstruct(image.with_array(array), image, table, tmp_path / "rt.dcm", tolerance_voxels=tolerance)
        found = []
        for contour in pydicom.dcmread(path).ROIContourSequence[0].ContourSequence:
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            found.append((np.column_stack([points, np.ones(len(points))]) @ inverse.T)[:, :2])
        return found

    outlines = [o[:-1] - 1.0 for o in measure.find_contours(np.pad(array[..., 1].astype(float), 1), 0.5)]
    exact = sorted(shoelace(o) for o in outlines)
    written = polygons(0.0)
    assert_allclose(sorted(shoelace(w) for w in written), exact, atol=1e-3)
    assert sum(map(len, written)) < sum(map(len, outlines)) / 2  # the collinear points are gone
    simplified = sorted(shoelace(w) for w in polygons(1.0))  # Douglas-Peucker when asked: not exact
    assert not np.allclose(simplified, exact, atol=1e-3)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([[0, 0], [0, 1], [0, 2], [1, 2], [2, 2], [2, 1], [2, 0], [1, 0]], [[0, 0], [0, 2], [2, 2], [2, 0]]),
        ([[0, 0], [0, 2], [0, 2], [2, 2], [2, 0]], [[0, 0], [0, 2], [2, 2], [2, 0]]),  # a repeated corner
        ([[0.5, 0], [0, 0.5], [0.5, 1], [1, 0.5]], [[0.5, 0], [0, 0.5], [0.5, 1], [1, 0.5]]),  # one pixel's outline
    ],
    ids=["square", "repeated", "diamond"],
)
def test_turns(points, expected):
    assert_array_equal(_turns(np.array(points, dtype=float)), expected)


def test_refused_without_dicom_source(make_series, tmp_path: Path):
    image = read_volume(make_series(line(2), uids=False))
    with pytest.raises(SegmentationFormatError, match="single-frame DICOM slices with UIDs"):
        write_rtstruct(
            image.with_array(np.ones(image.shape, np.uint8)), image, LabelTable.from_names(["x"]), tmp_path / "rt.dcm"
        )
