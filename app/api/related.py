"""Receive a ``multipart/related; type="application/dicom"`` body (STOW-RS): one file per part, streamed.

The body is read as a stream and counted; past the limit it is refused with 413 (a declared
Content-Length over the limit before anything is read). Each part is written to its own file in the
work folder while it is hashed, so memory stays bounded whatever the size of the instances.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from app.api.uploads import PartHeaders
from app.services.dicomweb import Part
from core.errors import InvalidRequest, UnsupportedMediaType, UploadTooLarge

MAX_PARTS = 100_000


@dataclass
class _Reader:
    """Callbacks of the streaming multipart parser: each part's body into its own file."""

    folder: Path
    parts: list[Part] = field(default_factory=list)
    _sink: BinaryIO | None = None
    _digest: Any = None
    _headers: PartHeaders = field(default_factory=PartHeaders)

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            **self._headers.callbacks(),
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise InvalidRequest(f"more than {MAX_PARTS} instances in one request")
        part = Part(self.folder / f"{len(self.parts):06d}.dcm")
        self.parts.append(part)
        self._sink = part.path.open("wb")
        self._digest = hashlib.sha256()
        self._headers.values = {}

    def _data(self, data: bytes, start: int, end: int) -> None:
        assert self._sink is not None
        self._sink.write(data[start:end])
        self._digest.update(data[start:end])

    def _end(self) -> None:
        assert self._sink is not None
        self._sink.close()
        self._sink = None
        part = self.parts[-1]
        part.sha256 = self._digest.hexdigest()
        part.media_type = parse_options_header(self._headers.values.get(b"content-type", b""))[0].decode("latin-1")

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


async def receive_related(request: Request, folder: Path, limit: int) -> list[Part]:
    """Stream a ``multipart/related`` body into one file per part under ``folder``.

    Raises:
        UnsupportedMediaType: not ``multipart/related; type="application/dicom"``.
        UploadTooLarge: more than ``limit`` bytes.
        InvalidRequest: a malformed body.
    """
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    kind = options.get(b"type", b"application/dicom").lower()
    if media_type != b"multipart/related" or kind != b"application/dicom" or b"boundary" not in options:
        raise UnsupportedMediaType(
            'STOW-RS takes multipart/related; type="application/dicom" with a boundary, '
            f"not {request.headers.get('content-type') or 'no content type'}"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"the request ({declared} bytes) is larger than the limit of {limit} bytes")
    reader = _Reader(folder)
    parser = MultipartParser(options[b"boundary"], reader.callbacks())  # type: ignore[arg-type]
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise UploadTooLarge(f"the request is larger than the limit of {limit} bytes (LRC_MAX_UPLOAD_BYTES)")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest(f"malformed multipart/related body: {exc}") from exc
    finally:
        reader.close()
    if not reader.parts:
        raise InvalidRequest("the request holds no instance")
    return reader.parts
