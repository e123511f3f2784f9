"""Multipart uploads received part by part (``app/api/uploads.py``): files on disk as they arrive, hashed on the
way, whatever the chunking of the body; memory that does not grow with the number or size of the files."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from app.api.uploads import MAX_FIELD_BYTES, Received, receive
from core.errors import InvalidRequest

BOUNDARY = "lrc-test-boundary"
MIB = 1024**2


def _part(name: str, content: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"


def _body(parts: Iterator[bytes]) -> Iterator[bytes]:
    yield from parts
    yield f"--{BOUNDARY}--\r\n".encode()


def _receive(body: Iterator[bytes], folder: Path, chunk: int, limit: int = 1 << 40) -> Received:
    """``receive`` on a real Starlette request whose body comes in ``chunk``-byte messages."""

    def messages() -> Iterator[dict[str, Any]]:
        pending = b""
        for piece in body:
            pending += piece
            while len(pending) >= chunk:
                yield {"type": "http.request", "body": pending[:chunk], "more_body": True}
                pending = pending[chunk:]
        yield {"type": "http.request", "body": pending, "more_body": False}

    stream = messages()

    async def next_message() -> dict[str, Any]:
        return next(stream)

    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    request = Request({"type": "http", "method": "POST", "headers": headers}, next_message)
    return asyncio.run(receive(request, folder, limit))


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_files_and_fields_whatever_the_chunks(tmp_path: Path, chunk: int):
    contents = [bytes(range(256)) * 40, b"", b"--" + BOUNDARY.encode() + b" inside a file"]
    parts = [
        _part("name", "Leber und Milz, größer".encode()),
        _part("files", contents[0], "a.dcm"),
        _part("files", contents[1], "empty.nii"),
        _part("labels", b'{"5": "liver"}'),
        _part("files", contents[2], ""),  # a file without a name
    ]
    received = _receive(_body(iter(parts)), tmp_path, chunk)
    assert received.fields == {"name": "Leber und Milz, größer", "labels": '{"5": "liver"}'}
    files = received.files["files"]
    assert [f.name for f in files] == ["a.dcm", "empty.nii", "file4"]
    assert [f.path.name for f in files] == ["00001_a.dcm", "00002_empty.nii", "00004_file4"]
    for file, content in zip(files, contents, strict=True):
        assert file.path.read_bytes() == content
        assert (file.sha256, file.size) == (hashlib.sha256(content).hexdigest(), len(content))


def test_memory_does_not_grow_with_the_files(tmp_path: Path):
    """40 MiB in 160 files of 256 KiB (Starlette's parser would hold every file under 1 MiB in memory)."""
    size, count = 256 * 1024, 160
    parts = (_part("files", bytes([k % 251]) * size, f"slice{k}.dcm") for k in range(count))
    tracemalloc.start()
    try:
        received = _receive(_body(parts), tmp_path, 64 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(received.files["files"]) == count
    assert sum(f.path.stat().st_size for f in received.files["files"]) == size * count
    assert peak < 4 * MIB, f"{peak / MIB:.1f} MiB held receiving {size * count / MIB:.0f} MiB"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([_part("labels", b"x" * (MAX_FIELD_BYTES + 1))], "field 'labels' is over"),
        ([b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n"], '"name" must be given'),
        ([b"--" + BOUNDARY.encode() + b"\r\nno header line\r\n"], "malformed multipart body"),
    ],
)
def test_malformed_bodies_refused(tmp_path: Path, body: list[bytes], message: str):
    with pytest.raises(InvalidRequest, match=message):
        _receive(_body(iter(body)), tmp_path, 1000)
