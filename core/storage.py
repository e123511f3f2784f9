"""Blob storage on a local (or shared) folder, content-addressed by sha256.

A blob is written once: the content is streamed into a temporary file in the same folder tree
while it is hashed, then renamed to ``<root>/<aa>/<sha256>`` (atomic on one file system). The same
content stored twice keeps one file.

A request that stores several blobs and then fails (disk full half-way, database gone before the
record is committed, a bad file in a later part of the request) wraps its writes in
:meth:`BlobStore.undo_on_error`: the blobs it created are removed again, so no unreferenced half of
an upload stays on disk. A caller with records passes :func:`core.blobs.discard`, which keeps
a blob that another request recorded meanwhile. The blobs created inside such a block, until it ends,
are :meth:`BlobStore.in_flight`: the sweep of leftovers (:mod:`app.services.cleanup`) leaves them alone
whatever their age.

A request's files wait in a staging folder under the work folder (:func:`staging_folder`), removed
when the request ends; a process killed meanwhile leaves it, for the sweep to remove once it is
untouched long enough. The folders of this process's requests in progress are :func:`live_staging`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
_live_staging: set[Path] = set()  # the staging folders of this process's requests in progress (one set per process)
_live_lock = threading.Lock()


@contextlib.contextmanager
def staging_folder(root: Path, prefix: str = "upload-") -> Iterator[Path]:
    """A new folder ``<root>/<prefix>*`` for one request's files, removed afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    with _live_lock:
        _live_staging.add(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with _live_lock:
            _live_staging.discard(folder)


def live_staging() -> set[Path]:
    """The staging folders this process's requests use now."""
    with _live_lock:
        return set(_live_staging)


class BlobStore:
    """Files by sha256 under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._created = threading.local()  # per thread: a list of shas while inside undo_on_error
        self._in_flight: dict[str, int] = {}  # sha -> blocks of undo_on_error that created it and run still
        self._in_flight_lock = threading.Lock()

    @contextlib.contextmanager
    def undo_on_error(self, discard: Callable[[list[str]], None] | None = None) -> Iterator[None]:
        """Remove the blobs this thread creates inside the block when the block raises.

        Blobs that were already stored are left alone. ``discard`` removes the created blobs instead
        of :meth:`delete`: the store cannot tell whether a concurrent request stored the same content
        after this one and recorded it; :func:`core.blobs.discard` asks the records.
        """
        outer = getattr(self._created, "shas", None)
        created: list[str] = []
        self._created.shas = created
        try:
            yield
        except BaseException:
            (discard or self.delete)(created)
            raise
        finally:
            if outer is not None:
                outer.extend(created)  # in flight until the outer block ends
            else:
                self._settled(created)
            self._created.shas = outer

    def in_flight(self) -> set[str]:
        """Blobs created inside a block of :meth:`undo_on_error` that has not ended: not recorded yet."""
        with self._in_flight_lock:
            return set(self._in_flight)

    def _settled(self, shas: list[str]) -> None:
        with self._in_flight_lock:
            for sha in shas:
                left = self._in_flight.pop(sha, 0) - 1
                if left > 0:
                    self._in_flight[sha] = left

    def path(self, sha256: str) -> Path:
        """Where the blob with this hash lives (it may not exist)."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        """True when the blob is stored."""
        return self.path(sha256).is_file()

    def put_file(self, source: Path) -> tuple[str, int]:
        """Store a copy of a file; return its sha256 and size."""
        with source.open("rb") as handle:
            return self.put_stream(handle)

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store what ``stream`` yields; return its sha256 and size."""
        digest = hashlib.sha256()
        size = 0
        handle, name = tempfile.mkstemp(dir=self.tmp)
        tmp = Path(name)
        try:
            with os.fdopen(handle, "wb") as sink:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
            sha = digest.hexdigest()
            self._place(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, size

    def _place(self, tmp: Path, sha: str) -> None:
        target = self.path(sha)
        if target.is_file():
            return  # same content already stored
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        created = getattr(self._created, "shas", None)
        if created is not None:
            created.append(sha)
            with self._in_flight_lock:
                self._in_flight[sha] = self._in_flight.get(sha, 0) + 1

    def delete(self, shas: Iterable[str]) -> None:
        """Remove blobs (callers check that nothing references them)."""
        for sha in shas:
            self.path(sha).unlink(missing_ok=True)

    def materialize(self, entries: Iterable[tuple[str, str]], folder: Path) -> list[Path]:
        """Links named as the user named the files (readers pick formats by name), in order.

        ``entries`` are ``(name, sha256)`` pairs; names are reduced to a safe base name.
        """
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, (name, sha) in enumerate(entries):
            link = folder / f"{index:05d}_{safe_name(name)}"
            source = self.path(sha)
            try:
                link.symlink_to(source)
            except OSError:
                shutil.copyfile(source, link)
            paths.append(link)
        return paths


SAFE_NAME_BYTES = 128  # a file system takes 255 bytes per name, with room for the index in front


def safe_name(name: str) -> str:
    """A file base name without folders or characters that could surprise a file system.

    At most :data:`SAFE_NAME_BYTES` bytes of UTF-8 (letters beyond ASCII take 2-4 bytes each); a longer
    name keeps its end, where the suffix is that tells a NIfTI file (``.nii.gz``) from DICOM.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in base)
    tail = cleaned.encode("utf-8", "surrogateescape")[-SAFE_NAME_BYTES:].decode("utf-8", "ignore")
    return tail.lstrip(".") or "file"
