"""Label maps checked before they are used: whole values 0..65535, at most 255 structures, something labelled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lrc.io import ImageIOError, UnsupportedInput, Volume, VolumeInfo, nifti, read_nifti, write_nifti
from lrc.io.label_maps import LabelValues, check_label_map, inspect_label, read_label

AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def volume(array: np.ndarray) -> Volume:
    return Volume(array, AFFINE)


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.full((4, 4, 2), -1, dtype=np.int16), "goes down to -1"),
        (np.full((4, 4, 2), 0.5, dtype=np.float32), "fractional values"),
        (np.full((4, 4, 2), np.nan, dtype=np.float32), "NaN or infinite"),
        (np.full((4, 4, 2), 2**40, dtype=np.int64), "this map holds 1099511627776"),
        (np.arange(1, 301, dtype=np.int16).reshape(10, 15, 2), "300 distinct label values"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "labels nothing"),
        (np.full((4, 4, 2), 1 + 2j, dtype=np.complex64), "complex64"),
    ],
)
def test_what_is_no_label_map_is_refused(array: np.ndarray, needle: str):
    with pytest.raises(UnsupportedInput, match=needle) as raised:
        check_label_map(volume(array), "labels.nii.gz")
    assert "labels.nii.gz" in str(raised.value)


def test_the_ct_itself_is_refused_as_its_label_map(shared_data: Path):
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    image = read_nifti(folder / "example_ct_sm.nii.gz")
    with pytest.raises(UnsupportedInput, match="is it the image rather than its labels"):
        read_label(folder / "example_ct_sm.nii.gz", image)
    mr = read_nifti(shared_data / "nifti" / "totalseg_mr_abdomen" / "example_mr_sm.nii.gz")
    with pytest.raises(UnsupportedInput, match="is it the image"):  # an MR: its negative values, or too many
        check_label_map(mr, "mr.nii.gz")


def test_label_maps_come_back_in_the_smallest_unsigned_type(shared_data: Path, tmp_path: Path):
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    image = read_nifti(folder / "example_ct_sm.nii.gz")
    label = read_label(folder / "example_seg.nii.gz", image)
    assert label.array.dtype == np.uint8
    assert np.array_equal(label.array, read_nifti(folder / "example_seg.nii.gz").array)
    wide = np.zeros(image.shape, dtype=np.float64)
    wide[0, 0, 0], wide[1, 1, 1] = 1000.0, 3.0  # whole numbers stored as floats, one above 255
    path = write_nifti(Volume(wide, image.affine), tmp_path / "wide.nii.gz")
    checked = read_label(path, image)
    assert checked.array.dtype == np.uint16
    assert sorted(np.unique(checked.array)) == [0, 3, 1000]
    assert check_label_map(volume(np.ones((2, 2, 2), dtype=bool)), "m").array.dtype == np.uint8


def _verdict(check: Callable[[], object]) -> str:
    """``"ok"``, or the message of the image reading error ``check`` raised."""
    try:
        check()
    except ImageIOError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def _streamed(array: np.ndarray, name: str) -> int:
    found = LabelValues()
    for slab in nifti.slabs(array.shape, 7):  # several slabs, some cutting rows
        found.add(array[slab])
    return found.check(name)


SHAPE = (5, 6, 4)
wide = np.zeros(SHAPE, dtype=np.uint16)
wide[0, 0, 0], wide[4, 5, 3] = 3, 1000
spread = np.zeros(SHAPE, dtype=np.float32)
spread[-1, -1, -1] = -2.0  # the one negative value in the last slab
many = np.zeros(SHAPE, dtype=np.int16)
many.flat[:] = np.arange(many.size) % 130  # 129 structures in the first half and again in the second
LABEL_ARRAYS = {
    "negative": np.full(SHAPE, -1, dtype=np.int16),
    "negative in the last slab": spread,
    "fractional": np.full(SHAPE, 0.5, dtype=np.float32),
    "NaN": np.full(SHAPE, np.nan, dtype=np.float32),
    "infinite": np.full(SHAPE, np.inf, dtype=np.float64),
    "above 65535": np.full(SHAPE, 70000, dtype=np.uint32),
    "far above 65535": np.full(SHAPE, 2**40, dtype=np.int64),
    "300 values across slabs": np.arange(1, 301, dtype=np.int16).reshape(10, 15, 2),
    "129 values, each in two slabs": many,
    "empty": np.zeros(SHAPE, dtype=np.uint8),
    "good uint8": (np.arange(120, dtype=np.uint8) % 4).reshape(SHAPE),
    "good uint16": wide,
    "good whole floats": wide.astype(np.float64),
    "bool": np.arange(120).reshape(SHAPE) % 2 == 0,
    "complex": np.full(SHAPE, 1 + 2j, dtype=np.complex64),
}


@pytest.mark.parametrize("case", list(LABEL_ARRAYS))
def test_the_streamed_check_gives_check_label_maps_verdict(case: str):
    array = LABEL_ARRAYS[case]
    whole = _verdict(lambda: check_label_map(volume(array), "labels.nii.gz"))
    assert _verdict(lambda: _streamed(array, "labels.nii.gz")) == whole
    if whole == "ok" and array.dtype != bool:
        assert _streamed(array, "m") == int(array.max())


@pytest.mark.parametrize("case", [c for c, a in LABEL_ARRAYS.items() if a.dtype.kind in "iuf" and a.itemsize <= 4])
def test_inspect_label_gives_read_labels_verdict_on_nifti_files(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(nifti, "SLAB_VOXELS", 7)
    array = LABEL_ARRAYS[case]
    path = write_nifti(Volume(array, AFFINE), tmp_path / "labels.nii.gz")
    image = Volume(np.zeros(array.shape, np.int16), AFFINE)
    whole = _verdict(lambda: read_label(path, image))
    assert _verdict(lambda: inspect_label(path, VolumeInfo(array.shape, AFFINE))) == whole


@pytest.mark.parametrize(
    ("shape", "affine"),
    [
        (SHAPE, AFFINE),
        (SHAPE[::-1], np.array([[0, 0, 1.5, 0], [0, -1.5, 0, 7.5], [3.0, 0, 0, 0], [0, 0, 0, 1]])),  # permuted, flipped
        ((5, 6, 5), AFFINE),
        (SHAPE, AFFINE @ np.diag([1.0, 1.0, 1.5, 1.0])),
        (SHAPE, AFFINE + np.array([[0, 0, 0, 0.4], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])),  # within 0.5 mm
        (SHAPE, AFFINE + np.array([[0, 0, 0, 2.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])),
    ],
)
def test_inspect_label_checks_the_grid_as_read_label_does(
    shape: tuple[int, int, int], affine: np.ndarray, tmp_path: Path
):
    array = np.ones(shape, dtype=np.uint8)
    path = write_nifti(Volume(array, affine), tmp_path / "labels.nii.gz")
    image = Volume(np.zeros(SHAPE, np.int16), AFFINE)
    whole = _verdict(lambda: read_label(path, image))
    assert _verdict(lambda: inspect_label(path, VolumeInfo(SHAPE, AFFINE))) == whole
