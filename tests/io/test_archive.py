"""lrc/io/archive.py: zip entries no file system or zipfile can extract are refused with a reason.

Every archive holds a real CT slice from the factory; the entries are named, flagged or compressed
the way hostile or exotic zip tools write them (flags and methods set in the real headers' bytes).
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from lrc.io import ArchiveLimits, UnsafeArchive, UnsupportedInput, read_volume
from lrc.io.archive import extract_zip
from tests.dicom_factory import line

LOCAL, CENTRAL = b"PK\x03\x04", b"PK\x01\x02"


@pytest.fixture
def ct_slice(make_series: Callable[..., list[Path]]) -> bytes:
    """One real CT slice (64 x 64, Explicit VR Little Endian) as bytes."""
    return make_series(line(1))[0].read_bytes()


def _zip(path: Path, entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return path


def _patch_headers(path: Path, offset: int, fmt: str, value: int) -> None:
    """Write ``value`` at ``offset`` of the first local and the first central header (flags at 6/8, method at 8/10)."""
    data = bytearray(path.read_bytes())
    local, central = data.index(LOCAL), data.index(CENTRAL)
    struct.pack_into(fmt, data, local + offset, value)
    struct.pack_into(fmt, data, central + offset + 2, value)
    path.write_bytes(bytes(data))


def _refused(archive: Path, tmp_path: Path, error: type[Exception], message: str) -> None:
    target = tmp_path / "out"
    with pytest.raises(error, match=message):
        extract_zip(archive, target, ArchiveLimits())
    assert not target.exists() or not any(p.is_file() for p in target.rglob("*"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 5000 + ".dcm", "a name of 5004 bytes, over the 1024 taken"),
        ("/".join(["study"] * 300) + "/slice.dcm", "a name of 1809 bytes"),  # deep folders, short names
        ("study/" + "b" * 300 + ".dcm", "a file or folder name over 255 bytes"),
        ("é" * 130 + ".dcm", "a file or folder name over 255 bytes"),  # 130 characters, 264 bytes
        ("c" * 300 + "/slice.dcm", "a file or folder name over 255 bytes"),  # a folder's name
    ],
)
def test_names_no_file_system_takes(tmp_path: Path, ct_slice: bytes, name: str, message: str):
    _refused(_zip(tmp_path / "long.zip", [(name, ct_slice)]), tmp_path, UnsafeArchive, message)


def test_longest_names_taken_are_extracted(tmp_path: Path, ct_slice: bytes):
    name = "/".join(["d" * 200] * 4) + "/" + "e" * 215  # 1019 bytes, parts of at most 255
    assert len(name) <= 1024
    (path,) = extract_zip(_zip(tmp_path / "ok.zip", [(name, ct_slice)]), tmp_path / "out", ArchiveLimits())
    assert path.read_bytes() == ct_slice


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("study", b"x"), ("study/slice.dcm", None)], "'study' is both a file and a folder"),
        ([("study/slice.dcm", None), ("study", b"x")], "'study' is both a file and a folder"),
        ([("study/", b""), ("study", None)], "'study' is both a file and a folder"),
        ([("study/slice.dcm", None), ("study/./slice.dcm", None)], "occurs twice"),  # one path, two names
        ([(".", None)], "has no file name"),
    ],
)
def test_entries_that_cannot_all_exist(
    tmp_path: Path, ct_slice: bytes, entries: list[tuple[str, bytes | None]], message: str
):
    archive = _zip(
        tmp_path / "clash.zip", [(name, ct_slice if content is None else content) for name, content in entries]
    )
    _refused(archive, tmp_path, UnsafeArchive, message)


def test_same_name_twice(tmp_path: Path, ct_slice: bytes):
    # The second copy would overwrite the first: one of them would be lost without a word.
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = _zip(tmp_path / "twice.zip", [("study/slice.dcm", ct_slice), ("study/slice.dcm", b"other")])
    _refused(archive, tmp_path, UnsafeArchive, "'study/slice.dcm' occurs twice")


def test_encrypted_entry(tmp_path: Path, ct_slice: bytes):
    archive = _zip(tmp_path / "secret.zip", [("study/slice.dcm", ct_slice)])
    _patch_headers(archive, 6, "<H", 0x1)  # general purpose flag bit 0: encrypted (APPNOTE 4.4.4)
    _refused(archive, tmp_path, UnsupportedInput, "'study/slice.dcm' is encrypted .*without a password")


@pytest.mark.parametrize(("method", "name"), [(9, "Deflate64"), (99, "AES encryption"), (93, "Zstandard"), (77, "77")])
def test_compression_zipfile_cannot_inflate(tmp_path: Path, ct_slice: bytes, method: int, name: str):
    archive = _zip(tmp_path / "method.zip", [("study/slice.dcm", ct_slice)])
    _patch_headers(archive, 8, "<H", method)
    _refused(archive, tmp_path, UnsupportedInput, f"compressed with (method )?{name}, which cannot be unpacked")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA, zipfile.ZIP_DEFLATED])
def test_corrupt_entry_of_each_method(tmp_path: Path, ct_slice: bytes, method: int):
    archive = _zip(tmp_path / "corrupt.zip", [("study/slice.dcm", ct_slice)], method)
    data = bytearray(archive.read_bytes())
    start = data.index(LOCAL) + 30 + len("study/slice.dcm")  # the entry's compressed bytes
    for k in range(start + 40, start + 400):
        data[k] ^= 0x55
    archive.write_bytes(bytes(data))
    _refused(archive, tmp_path, UnsafeArchive, "'study/slice.dcm' is corrupt")


def test_name_too_long_for_a_deep_extraction_folder(tmp_path: Path, ct_slice: bytes):
    deep = tmp_path
    while len(os.fsencode(deep)) < 3300:  # an extraction folder whose own path leaves < 1024 bytes
        deep = deep / ("f" * 200)
    deep.mkdir(parents=True)
    name = "/".join(["g" * 250] * 4)  # 1003 bytes: taken by the archive check, too long in this folder
    archive = _zip(tmp_path / "deep.zip", [(name, ct_slice)])
    with pytest.raises(UnsafeArchive, match="cannot be written as a file .*File name too long"):
        extract_zip(archive, deep / "out", ArchiveLimits())


def test_zip_with_a_long_name_via_read_volume(tmp_path: Path, ct_slice: bytes):
    with pytest.raises(UnsafeArchive, match="a name of 5004 bytes"):
        read_volume(_zip(tmp_path / "long.zip", [("a" * 5000 + ".dcm", ct_slice)]))
