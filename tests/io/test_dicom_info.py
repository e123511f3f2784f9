"""lrc.io.read_dicom_info (a series' headers, for the writers that reference it) against read_volume on real
series: the same grid, modality, source and warnings with no pixel decoded or checked, the series picked as
read_volume picks it, and the same DICOM SEG and RTSTRUCT written from either."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from pydicom.uid import JPEG2000Lossless

from lrc.io import MultipleSeries, Volume, read_dicom_info, read_volume
from lrc.io import dicom_read as dicom_read_module
from lrc.io.labels import LabelTable
from lrc.writers import DICOM_SEG, RTSTRUCT, WriteOptions
from tests.dicom_factory import line
from tests.dicom_outputs import normalised_bytes


def _series(name: str, shared_data: Path, make_series) -> list[Path]:
    if name == "ct-3slice":
        return sorted((shared_data / "dicom" / "seg_dcmqi" / "ct-3slice").glob("*.dcm"))
    if name == "jpeg2000":
        return make_series(line(10, spacing=2.5), size=96, transfer_syntax=JPEG2000Lossless)
    return sorted((shared_data / "dicom" / "ct_series_totalseg").glob("CT.*"))


@pytest.fixture(params=["ct-3slice", "jpeg2000", "siemens-no-uids"])
def series(request: pytest.FixtureRequest, shared_data: Path, make_series) -> list[Path]:
    """dcmqi's real 3-slice CT (implicit VR), 10 JPEG 2000 slices the factory builds from it, and the real
    20-slice Siemens JPEG 2000 series (its UIDs blank: a grid, not a reference)."""
    return _series(request.param, shared_data, make_series)


@pytest.fixture(params=["ct-3slice", "jpeg2000"])
def referenced(request: pytest.FixtureRequest, shared_data: Path, make_series) -> list[Path]:
    """The series of :func:`series` with every UID: a SEG or RTSTRUCT can reference them."""
    return _series(request.param, shared_data, make_series)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding or checking pixel data fails the test."""

    def refuse(*_: Any) -> None:
        raise AssertionError("pixel data were decoded")

    monkeypatch.setattr(dicom_read_module, "read_planes", refuse)
    monkeypatch.setattr(dicom_read_module, "check_planes", refuse)


def test_headers_give_what_reading_gives(series: list[Path], request: pytest.FixtureRequest):
    volume = read_volume(series)
    request.getfixturevalue("no_decoding")  # from here on
    info = read_dicom_info(series)
    assert info.shape == volume.shape
    assert_array_equal(info.affine, volume.affine)
    assert (info.modality, info.warnings) == (volume.modality, volume.warnings)
    assert info.source == volume.source  # UIDs, files, frames, copied attributes (headers compared below)
    assert volume.source is not None
    assert info.source is not None
    assert len(info.source.headers) == len(volume.source.headers) == len(series)
    for ours, theirs in zip(info.source.headers, volume.source.headers, strict=True):
        assert ours == theirs
        assert "PixelData" not in ours


def test_a_series_is_picked_as_read_volume_picks_it(shared_data: Path, make_series, no_decoding):
    first = make_series(line(4), folder="both", names=[f"a{i}.dcm" for i in range(4)])
    make_series(line(3, start=0.0), folder="both", names=[f"b{i}.dcm" for i in range(3)])
    folder = first[0].parent
    with pytest.raises(MultipleSeries, match="the input holds 2 series"):
        read_dicom_info(folder)
    uid = str(read_dicom_info(first).source.series_instance_uid)  # type: ignore[union-attr]
    assert read_dicom_info(folder, series=uid).shape == (64, 64, 4)
    assert read_dicom_info(folder, series=1).shape == (64, 64, 3)


def _tissue(volume: Volume) -> Volume:
    """Soft tissue and bone thresholded from the real CT, the first slice left empty."""
    labels = np.zeros(volume.shape, dtype=np.uint8)
    labels[(volume.array > -200) & (volume.array < 100)] = 1
    labels[volume.array >= 300] = 2
    labels[..., 0] = 0
    return volume.with_array(labels)


@pytest.mark.parametrize(
    ("writer", "options"),
    [(DICOM_SEG, WriteOptions()), (DICOM_SEG, WriteOptions(segmentation_type="labelmap")), (RTSTRUCT, None)],
    ids=["seg-binary", "seg-labelmap", "rtstruct"],
)
def test_writers_write_the_same_object_from_the_headers(referenced: list[Path], tmp_path: Path, writer, options):
    volume = read_volume(referenced)
    labels = _tissue(volume)
    table = LabelTable.from_names({1: "muscle", 2: "bone"})
    decoded = writer.write(labels, tmp_path / "decoded.dcm", volume, table, options)
    headers = writer.write(labels, tmp_path / "headers.dcm", read_dicom_info(referenced), table, options)
    assert normalised_bytes(headers) == normalised_bytes(decoded)
    other = labels.with_array(np.where(labels.array == 2, 1, labels.array))  # bone counted as muscle
    assert normalised_bytes(writer.write(other, tmp_path / "other.dcm", volume, table, options)) != normalised_bytes(
        decoded
    )
