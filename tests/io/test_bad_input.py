"""Bad input: each case is a typed error with a useful message, never a crash."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pydicom
import pytest

from lrc.io import (
    ArchiveLimits,
    InvalidDicom,
    MultipleSeries,
    NoImageData,
    ReadOptions,
    UnsafeArchive,
    UnsupportedInput,
    read_images,
    read_volume,
)
from lrc.io.archive import extract_zip
from tests.dicom_factory import line


def test_random_bytes_named_dcm(tmp_path: Path):
    path = tmp_path / "scan.dcm"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(InvalidDicom, match="scan.dcm: not a DICOM file"):
        read_volume(path)


def test_truncated_uncompressed_file(make_series):
    (path,) = make_series(line(1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3000])
    with pytest.raises(InvalidDicom, match="pixel data truncated"):
        read_volume(path)


def test_truncated_jpeg2000_file(shared_data: Path, tmp_path: Path):
    source = sorted((shared_data / "dicom" / "ct_series_totalseg").glob("CT.*"))[0]
    data = source.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidDicom, match="cut.dcm"):
        read_volume(tmp_path / "cut.dcm")


def test_dicom_without_pixel_data(make_series):
    (path,) = make_series(line(1))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(NoImageData, match="no pixel data"):
        read_volume(path)


def test_segmentation_is_not_an_image(shared_data: Path):
    with pytest.raises(NoImageData, match="DICOM SEG"):
        read_volume(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm")


def test_empty_folder(tmp_path: Path):
    with pytest.raises(UnsupportedInput, match="no files found"):
        read_volume(tmp_path)


def test_symlinks_in_folders_are_not_followed(make_series, tmp_path: Path):
    (target,) = make_series(line(1))
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "a.dcm").symlink_to(target)
    with pytest.raises(UnsupportedInput, match="symbolic link skipped"):
        read_volume(tmp_path / "links")


def test_missing_path(tmp_path: Path):
    with pytest.raises(UnsupportedInput, match="no such file"):
        read_volume(tmp_path / "nope")


def test_empty_zip(tmp_path: Path):
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    with pytest.raises(UnsupportedInput, match="no files found"):
        read_volume(tmp_path / "empty.zip")


@pytest.mark.parametrize("name", ["../evil.dcm", "a/../../evil.dcm", "/etc/evil.dcm", "C:/evil.dcm", "..\\evil.dcm"])
def test_zip_path_traversal(tmp_path: Path, name: str):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.dcm", b"x")
        zf.writestr(name, b"payload")
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchive, match="refused"):
        read_images([archive], ReadOptions(extract_dir=target))
    assert not (tmp_path / "evil.dcm").exists()
    assert not target.exists() or not any(target.rglob("*.dcm"))


def test_zip_symlink_entry(tmp_path: Path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link.dcm")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        read_volume(archive)


def test_zip_bomb_ratio(tmp_path: Path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.dcm", b"\0" * (64 * 1024 * 1024))
    assert archive.stat().st_size < 200_000
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        extract_zip(archive, tmp_path / "out", ArchiveLimits())
    assert not any((tmp_path / "out").rglob("*.dcm"))


def test_zip_total_size_limit(tmp_path: Path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for k in range(3):
            zf.writestr(f"f{k}.bin", os.urandom(400_000))
    with pytest.raises(UnsafeArchive, match="more than 1000000 bytes"):
        extract_zip(archive, tmp_path / "out", ArchiveLimits(max_total_bytes=1_000_000))
    assert not any((tmp_path / "out").rglob("*.bin"))


def test_zip_entry_count_limit(tmp_path: Path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for k in range(20):
            zf.writestr(f"f{k}", b"")
    with pytest.raises(UnsafeArchive, match="20 entries"):
        extract_zip(archive, tmp_path / "out", ArchiveLimits(max_entries=10))


def test_corrupt_zip(tmp_path: Path):
    archive = tmp_path / "corrupt.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", os.urandom(10_000))
    data = bytearray(buffer.getvalue())
    data[100:200] = os.urandom(100)
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchive, match="corrupt"):
        read_volume(archive)


def test_zip_of_a_series_reads(make_series, tmp_path: Path):
    files = make_series(line(3))
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in files:
            zf.write(path, f"study/{path.name}")
        zf.writestr("README.txt", "not dicom")
    volume = read_volume(archive)
    assert volume.shape == (64, 64, 3)
    assert any("README.txt" in w for w in volume.warnings)


def test_two_series_in_one_folder(make_series, tmp_path: Path):
    make_series(line(3), folder="two/a")
    make_series(line(4), folder="two/b")
    assert len(read_images([tmp_path / "two"]).volumes) == 2
    with pytest.raises(MultipleSeries, match="holds 2 series"):
        read_volume(tmp_path / "two")


def test_non_image_files_in_folder_are_noted(make_series, tmp_path: Path):
    make_series(line(2))
    (tmp_path / "series" / "notes.txt").write_text("hello")
    volume = read_volume(tmp_path / "series")
    assert any("notes.txt: not a DICOM file" in w for w in volume.warnings)
