"""DICOM SEG in and out, checked against dcmqi's and highdicom's SEG objects and dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from lrc.io import LabelGeometryMismatch, SegmentationFormatError, Volume, read_nifti, read_volume
from lrc.io.labels import LabelTable
from lrc.io.seg import read_seg, write_seg
from tests.dicom_factory import line


def nrrd_volume(path: Path) -> Volume:
    """An NRRD label map (LPS space) as a Volume: an independent route to world coordinates."""
    data, header = nrrd.read(str(path))
    assert header["space"] == "left-posterior-superior"
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(header["space directions"], dtype=float).T
    lps[:3, 3] = header["space origin"]
    return Volume(data, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps)


def dciodvfy_errors(path: Path) -> list[str]:
    """Error lines dciodvfy (dicom3tools) reports for a file."""
    tool = shutil.which("dciodvfy")
    assert tool, "dciodvfy (Debian package dicom3tools) is required; .ci/run installs it"
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def ct3(shared_data: Path) -> Volume:
    return read_volume(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")


def test_dcmqi_liver_equals_its_source_nrrd(shared_data: Path, ct3: Volume):
    masks = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", ct3)
    assert masks.table[1].name == "Liver"
    assert masks.table[1].type[2] == "Liver"
    labels = masks.label_map()
    from lrc.io.geometry import align_to

    expected = align_to(nrrd_volume(shared_data / "dicom" / "seg_dcmqi" / "liver_seg.nrrd"), ct3)
    assert_array_equal(labels.array, expected.array)
    assert [int(labels.array[:, :, k].sum()) for k in range(3)] == [36233, 35645, 35220]


def test_dcmqi_liver_without_reference_is_on_its_own_grid(shared_data: Path, ct3: Volume):
    masks = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm")
    from lrc.io.geometry import align_to

    on_ct = align_to(masks.label_map(), ct3)
    assert_array_equal(on_ct.array, read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", ct3).label_map().array)


def test_dcmqi_overlapping_segments(shared_data: Path, ct3: Volume):
    folder = shared_data / "dicom" / "seg_dcmqi"
    masks = read_seg(folder / "partial_overlaps.dcm", ct3)
    assert len(masks.table) == 5
    assert masks.overlap_voxels() > 0
    from lrc.io.geometry import align_to

    sources = {k: align_to(nrrd_volume(folder / f"partial_overlaps-{k}.nrrd"), ct3).array for k in (1, 2, 3)}
    expected = {1: sources[1] == 1, 4: sources[1] == 4, 5: sources[1] == 5, 2: sources[2] == 2, 3: sources[3] == 3}
    for number, mask in expected.items():
        assert_array_equal(masks.masks[number - 1] > 0.5, mask, err_msg=f"segment {number}")
    with pytest.raises(SegmentationFormatError, match="more than one segment"):
        masks.label_map()
    last = masks.label_map(overlap="last").array
    assert_array_equal(last[expected[5]], 5)


@pytest.mark.parametrize(
    ("name", "fractional", "top"),
    [
        ("seg_image_ct_binary.dcm", False, 1.0),
        ("seg_image_ct_binary_fractional.dcm", True, 1.0),
        ("seg_image_ct_true_fractional.dcm", True, 128 / 255),
    ],
)
def test_highdicom_variants(shared_data: Path, name: str, fractional: bool, top: float):
    masks = read_seg(shared_data / "dicom" / "seg_highdicom" / name)
    assert masks.fractional is fractional
    assert masks.masks.max() == pytest.approx(top, abs=1e-3)
    assert masks.masks.shape[0] == 1


def test_highdicom_overlap_variant(shared_data: Path):
    masks = read_seg(shared_data / "dicom" / "seg_highdicom" / "seg_image_ct_binary_overlap.dcm")
    assert masks.masks.shape[0] == 2
    assert masks.overlap_voxels() > 0


def test_highdicom_single_frame_onto_its_image(shared_data: Path):
    image = read_volume(shared_data / "dicom" / "seg_highdicom" / "ct_image.dcm")
    masks = read_seg(shared_data / "dicom" / "seg_highdicom" / "seg_image_ct_binary_single_frame.dcm", image)
    assert masks.masks.shape == (1, 128, 128, 1)
    assert masks.masks.sum() > 0


@pytest.mark.parametrize("kind", ["binary", "labelmap"])
def test_write_read_round_trip_on_real_slices(shared_data: Path, ct3: Volume, tmp_path: Path, kind):
    labels = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", ct3).label_map()
    path = write_seg(labels, ct3, LabelTable.from_names({1: "liver"}), tmp_path / "seg.dcm", segmentation_type=kind)
    back = read_seg(path, ct3)
    assert_array_equal(back.label_map().array, labels.array)
    assert back.table[1].type == ("SCT", "10200004", "Liver")
    if kind == "binary":  # dicom3tools of Debian 12 predates the LABELMAP SOP class (2024)
        assert dciodvfy_errors(path) == []


@pytest.mark.parametrize("order", ["C", "F"])
def test_label_map_layouts_and_the_source_headers_left_as_they_were(shared_data: Path, tmp_path: Path, order: str):
    image = read_volume(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")
    for header in image.source.headers:  # type: ignore[union-attr]
        header.SpecificCharacterSet = ""  # the default repertoire; highdicom wants it absent
    labels = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", image).label_map()
    array = np.asarray(labels.array, order=order)  # the predictor hands over Fortran order
    path = write_seg(labels.with_array(array), image, LabelTable.from_names({1: "liver"}), tmp_path / "seg.dcm")
    assert_array_equal(read_seg(path, image).label_map().array, labels.array)
    assert all("SpecificCharacterSet" in h for h in image.source.headers)  # type: ignore[union-attr]


def test_multi_label_with_gaps_in_values(make_series, tmp_path: Path):
    image = read_volume(make_series(line(6)))
    array = np.zeros(image.shape, dtype=np.uint8)
    array[5:20, 5:20, 1:4] = 5
    array[30:50, 10:30, 2:6] = 52
    array[40:60, 40:60, 0] = 1
    table = LabelTable.from_names({1: "spleen", 5: "liver", 52: "aorta"})
    path = write_seg(image.with_array(array), image, table, tmp_path / "seg.dcm")
    assert dciodvfy_errors(path) == []
    back = read_seg(path, image)
    assert [back.table[n].name for n in back.table] == ["spleen", "liver", "aorta"]
    numbers = back.label_map().array
    values = np.array([0, 1, 5, 52])[numbers]
    assert_array_equal(values, array)


def test_flipped_label_map_is_reoriented(make_series, tmp_path: Path):
    image = read_volume(make_series(line(3)))
    array = np.zeros(image.shape, dtype=np.uint8)
    array[3:10, 40:50, 1] = 1
    affine = image.affine.copy()
    affine[:3, 1] *= -1  # store j reversed, as a LAS NIfTI would
    affine[:3, 3] = image.affine[:3, :3] @ [0, image.shape[1] - 1, 0] + image.affine[:3, 3]
    nib.save(nib.Nifti1Image(array[:, ::-1, :].copy(), affine), tmp_path / "las.nii.gz")
    labels = read_nifti(tmp_path / "las.nii.gz")
    path = write_seg(labels, image, LabelTable.from_names(["liver"]), tmp_path / "seg.dcm")
    assert_array_equal(read_seg(path, image).label_map().array, array)


def test_write_refuses_wrong_grid(make_series, tmp_path: Path):
    image = read_volume(make_series(line(3)))
    wrong = Volume(np.zeros((64, 64, 4), dtype=np.uint8), image.affine)
    with pytest.raises(LabelGeometryMismatch, match="not drawn on this image"):
        write_seg(wrong, image, LabelTable.from_names(["liver"]), tmp_path / "seg.dcm")
    shifted = image.affine.copy()
    shifted[0, 3] += 5.0
    with pytest.raises(LabelGeometryMismatch, match="5.00 mm apart"):
        write_seg(
            Volume(np.zeros(image.shape, np.uint8), shifted),
            image,
            LabelTable.from_names(["liver"]),
            tmp_path / "seg.dcm",
        )
    assert not (tmp_path / "seg.dcm").exists()


def test_write_refuses_unknown_label_and_missing_uids(make_series, tmp_path: Path):
    image = read_volume(make_series(line(2)))
    labels = image.with_array(np.full(image.shape, 3, dtype=np.uint8))
    with pytest.raises(SegmentationFormatError, match=r"\[3\] are not in the label table"):
        write_seg(labels, image, LabelTable.from_names(["liver"]), tmp_path / "seg.dcm")
    anonymous = read_volume(make_series(line(2), folder="anon", uids=False))
    with pytest.raises(SegmentationFormatError, match="no complete DICOM source"):
        write_seg(
            anonymous.with_array(np.zeros(anonymous.shape, np.uint8)),
            anonymous,
            LabelTable.from_names(["liver"]),
            tmp_path / "seg.dcm",
        )


def test_seg_of_another_series_refused(make_series, shared_data: Path):
    image = read_volume(make_series(line(3)))
    with pytest.raises(SegmentationFormatError, match="references none of the image's slices"):
        read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", image)


def test_not_a_seg(tmp_path: Path):
    (tmp_path / "x.dcm").write_bytes(b"nope" * 100)
    with pytest.raises(SegmentationFormatError, match="not a readable DICOM SEG"):
        read_seg(tmp_path / "x.dcm")


@pytest.mark.parametrize(
    ("values", "known", "refused"),
    [
        ((0, 5), (1, 5), None),  # a gap below the maximum: checked value by value, accepted
        ((0, 3, 5), (1, 5), r"\[3\] are not in the label table"),
        ((0, 1, 7), (1, 5), r"\[7\] are not in the label table"),
        ((-2, 0, 1), (1, 5), r"\[-2\] are not in the label table"),
    ],
)
def test_label_values_checked(make_series, tmp_path: Path, values, known, refused):
    image = read_volume(make_series(line(len(values))))
    array = np.zeros(image.shape, dtype=np.int16)
    for k, value in enumerate(values):
        array[10:20, 10:20, k] = value
    table = LabelTable.from_names({v: f"organ {v}" for v in known})
    if refused:
        with pytest.raises(SegmentationFormatError, match=refused):
            write_seg(image.with_array(array), image, table, tmp_path / "seg.dcm")
        return
    back = read_seg(write_seg(image.with_array(array), image, table, tmp_path / "seg.dcm"), image)
    assert_array_equal(np.array([0, *known])[back.label_map().array], array)


def test_huge_label_value_is_refused_without_a_table_of_its_size(make_series, tmp_path: Path):
    # A stray value far above the table (an int64 map from elsewhere) is an unknown label, not a
    # request for a look-up table of 2**40 entries.
    image = read_volume(make_series(line(2)))
    array = np.zeros(image.shape, dtype=np.int64)
    array[10:20, 10:20, 1] = 2**40
    table = LabelTable.from_names({1: "liver"})
    with pytest.raises(SegmentationFormatError, match=r"\[1099511627776\] are not in the label table"):
        write_seg(image.with_array(array), image, table, tmp_path / "seg.dcm")


def test_warm_up_builds_a_real_seg(tmp_path: Path):
    """The io worker's warm-up makes a complete SEG (highdicom's whole path), not a partial one."""
    from lrc.io.atomic import write_dataset
    from lrc.io.seg import warm_up

    seg = warm_up()
    masks = read_seg(write_dataset(seg, tmp_path / "warm.dcm"))
    assert [label.name for label in masks.table.values()] == ["liver"]
    assert masks.masks.shape[0] == 1
    assert int(masks.masks.sum()) == 16
