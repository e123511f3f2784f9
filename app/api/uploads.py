"""Receive a multipart upload: streamed to disk in bounded memory, within a size limit.

The request body is read as a stream and counted; past ``LRC_MAX_UPLOAD_BYTES`` the upload is
refused with 413 (a declared Content-Length over the limit is refused before anything is read).
Each file part is written to its own file in the request's staging folder as it arrives, hashed on
the way, and closed when the part ends: whatever the number and size of the files, the process holds
one chunk of the body and one open file at a time (form fields, at most 1 MiB each, are kept as text).
Writes run in a worker thread, not on the event loop. The staging folder's time is touched while the
body streams in (at most once a second): another process's sweep of leftovers tells a live upload
from one its killed process left by that time.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from core.errors import InvalidRequest, UnsupportedMediaType, UploadTooLarge
from core.storage import safe_name

MAX_FILES = 100_000
MAX_FIELDS = 100
MAX_FIELD_BYTES = 1 << 20
FLUSH_BYTES = 1 << 20  # the body held before it is written out

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
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise InvalidRequest("malformed multipart body: Missing boundary in multipart.")
    reader = _FormReader(folder)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in _limited(request, limit, folder):
            parser.write(chunk)
            if reader.due:
                await run_in_threadpool(reader.flush)
        parser.finalize()
        await run_in_threadpool(reader.flush)
    except MultipartParseError as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from exc
    finally:
        reader.close()
    return reader.received


@dataclass
class PartHeaders:
    """The headers of the part a streaming multipart parser is in, from its callbacks (names in lower case)."""

    values: dict[bytes, bytes] = field(default_factory=dict)
    _name: bytes = b""
    _value: bytes = b""

    def callbacks(self) -> dict[str, Callable[..., None]]:
        """The parser's header callbacks; empty :attr:`values` at each part's beginning."""
        return {"on_header_field": self._add_name, "on_header_value": self._add_value, "on_header_end": self._end}

    def _add_name(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _add_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _end(self) -> None:
        self.values[self._name.strip().lower()] = self._value.strip()
        self._name, self._value = b"", b""


@dataclass
class _FilePart:
    """One file of the form on its way to disk."""

    name: str
    path: Path
    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    sink: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        if self.sink is None:
            self.sink = self.path.open("wb")
        self.sink.write(data)
        self.digest.update(data)
        self.size += len(data)

    def finish(self) -> ReceivedFile:
        if self.sink is None:  # an empty file
            self.sink = self.path.open("wb")
        self.sink.flush()
        os.fsync(self.sink.fileno())
        self.close()
        return ReceivedFile(self.name, self.path, self.digest.hexdigest(), self.size)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None


@dataclass
class _FormReader:
    """Callbacks of the streaming multipart parser. They only take note (parts, data, ends): the files are
    written by :meth:`flush`, in a worker thread, after each chunk of the body."""

    folder: Path
    received: Received = field(default_factory=Received)
    _items: int = 0  # parts begun: a file's index in its name, as the form lists them
    _files: int = 0
    _fields: int = 0
    _headers: PartHeaders = field(default_factory=PartHeaders)
    _field: str = ""
    _file: _FilePart | None = None
    _text: bytearray = field(default_factory=bytearray)
    _writes: list[tuple[_FilePart, bytes]] = field(default_factory=list)
    _ends: list[tuple[str, _FilePart]] = field(default_factory=list)

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            **self._headers.callbacks(),
            "on_part_begin": self._begin,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._headers.values, self._file, self._text = {}, None, bytearray()

    def _headers_finished(self) -> None:
        options = parse_options_header(self._headers.values.get(b"content-disposition", b""))[1]
        if b"name" not in options:
            raise InvalidRequest('malformed multipart body: the Content-Disposition header field "name" must be given')
        self._field = _text(options[b"name"])
        index = self._items
        self._items += 1
        if b"filename" in options:
            self._files += 1
            if self._files > MAX_FILES:
                raise InvalidRequest(f"malformed multipart body: more than {MAX_FILES} files")
            name = _text(options[b"filename"]) or f"file{index}"
            self._file = _FilePart(name, self.folder / f"{index:05d}_{safe_name(name)}")
        else:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise InvalidRequest(f"malformed multipart body: more than {MAX_FIELDS} form fields")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._writes.append((self._file, data[start:end]))
            return
        self._text += data[start:end]
        if len(self._text) > MAX_FIELD_BYTES:
            raise InvalidRequest(
                f"malformed multipart body: form field {self._field!r} is over {MAX_FIELD_BYTES} bytes"
            )

    def _end(self) -> None:
        if self._file is not None:
            self._ends.append((self._field, self._file))
        else:
            self.received.fields[self._field] = _text(bytes(self._text))

    @property
    def due(self) -> bool:
        """Whether to :meth:`flush` now: a part ended, or a MiB waits to be written."""
        return bool(self._ends) or sum(len(data) for _, data in self._writes) >= FLUSH_BYTES

    def flush(self) -> None:
        """Write what arrived since the last call; finish the files whose parts ended."""
        for part, data in self._writes:
            part.write(data)
        for key, part in self._ends:
            self.received.files.setdefault(key, []).append(part.finish())
        self._writes.clear()
        self._ends.clear()

    def close(self) -> None:
        """Close the files a broken body left open (the part in progress, parts ended but not finished)."""
        for _, part in self._ends:
            part.close()
        if self._file is not None:
            self._file.close()


def _text(value: bytes) -> str:
    """A header value or field as text: UTF-8, else Latin-1 (any bytes are)."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")
