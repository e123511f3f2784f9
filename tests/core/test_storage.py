"""core/storage.py: content-addressed blobs, stored once, written atomically."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from core.storage import BlobStore, safe_name


def test_same_content_is_stored_once(tmp_path: Path):
    store = BlobStore(tmp_path / "blobs")
    data = b"real enough" * 1000
    sha, size = store.put_stream(io.BytesIO(data))
    again, _ = store.put_stream(io.BytesIO(data))
    assert sha == again == hashlib.sha256(data).hexdigest()
    assert size == len(data)
    assert store.path(sha).read_bytes() == data
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [store.path(sha)]  # no temp files left


def test_a_failed_write_leaves_nothing(tmp_path: Path):
    store = BlobStore(tmp_path / "blobs")

    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        store.put_stream(Broken())
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]


def test_materialize_keeps_names_safe(tmp_path: Path):
    store = BlobStore(tmp_path / "blobs")
    sha, _ = store.put_stream(io.BytesIO(b"x"))
    (link,) = store.materialize([("../../etc/ct.nii.gz", sha)], tmp_path / "out")
    assert link.parent == tmp_path / "out"
    assert link.name.endswith("ct.nii.gz")
    assert link.read_bytes() == b"x"
    assert safe_name("..\\a b/.hidden") == "hidden"
    with pytest.raises(ValueError, match="not a sha256"):
        store.path("../x")


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("é" * 200 + ".nii.gz", "é" * 60 + ".nii.gz"),  # 407 bytes of UTF-8: no file system takes it whole
        ("肝" * 100 + ".dcm", "肝" * 41 + ".dcm"),
        ("a" * 300 + ".nii.gz", "a" * 121 + ".nii.gz"),  # the suffix that makes it NIfTI is kept
    ],
)
def test_long_names_are_cut_to_bytes_keeping_the_suffix(tmp_path: Path, name: str, kept: str):
    store = BlobStore(tmp_path / "blobs")
    sha, _ = store.put_stream(io.BytesIO(b"x"))
    (link,) = store.materialize([(name, sha)], tmp_path / "out")  # the upload's and the worker's file name
    assert safe_name(name) == kept
    assert len(kept.encode()) <= 128
    assert link.read_bytes() == b"x"
