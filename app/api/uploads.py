"""Receive a multipart upload: streamed to disk in bounded memory, within a size limit.

The request body is read as a stream and counted; past ``LRC_MAX_UPLOAD_BYTES`` the upload is
refused with 413 (a declared Content-Length over the limit is refused before anything is read).
Starlette's multipart parser keeps at most 1 MB of each file in memory and spills the rest to a
temporary file; each file is then copied into the request's staging folder while it is hashed. The
staging folder's time is touched while the body streams in (at most once a second): another process's
sweep of leftovers tells a live upload from one its killed process left by that time.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from app.errors import InvalidRequest, UnsupportedMediaType, UploadTooLarge
from app.storage import CHUNK, safe_name

TOUCH_S = 1.0


@dataclass(frozen=True)
class ReceivedFile:
    """One uploaded file, on disk in the work folder."""

    name: str
    path: Path
    sha256: str
    size: int


@dataclass
class Received:
    """Files of the ``files`` field (or others) and the plain form fields."""

    files: dict[str, list[ReceivedFile]] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


async def _limited(request: Request, limit: int, folder: Path) -> AsyncGenerator[bytes, None]:
    total = 0
    touched = time.monotonic()
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise UploadTooLarge(f"the upload is larger than the limit of {limit} bytes (LRC_MAX_UPLOAD_BYTES)")
        if time.monotonic() - touched >= TOUCH_S:
            touched = time.monotonic()
            os.utime(folder)
        yield chunk


async def receive(request: Request, folder: Path, limit: int) -> Received:
    """Parse a ``multipart/form-data`` request into files under ``folder`` and form fields.

    Raises:
        UnsupportedMediaType: not multipart/form-data.
        UploadTooLarge: more than ``limit`` bytes.
        InvalidRequest: a malformed multipart body.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType(
            f"send files as multipart/form-data (field 'files'), not {content_type or 'no content type'}"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"the upload ({declared} bytes) is larger than the limit of {limit} bytes")
    parser = MultiPartParser(request.headers, _limited(request, limit, folder), max_files=100_000, max_fields=100)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"malformed multipart body: {exc.message}") from exc
    received = Received()
    try:
        for index, (key, value) in enumerate(form.multi_items()):
            if isinstance(value, UploadFile):
                name = value.filename or f"file{index}"
                path = folder / f"{index:05d}_{safe_name(name)}"
                sha, size = await _copy(value, path)
                received.files.setdefault(key, []).append(ReceivedFile(name, path, sha, size))
            else:
                received.fields[key] = value
    finally:
        await form.close()
    return received


async def _copy(upload: UploadFile, path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as sink:
        while chunk := await upload.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
        sink.flush()
        os.fsync(sink.fileno())
    return digest.hexdigest(), size
