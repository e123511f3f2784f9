"""Received instances on disk, grouped by series, until a series is complete.

Layout under the data folder::

    incoming/<SeriesInstanceUID>/<SOPInstanceUID>.dcm   series still receiving
    batches/<batch id>/<SOPInstanceUID>.dcm             complete series, owned by the outbox
    tmp/                                                files being written

A series is complete once no instance of it arrived for ``series_timeout`` seconds; it is then
moved (one rename) to ``batches/``. Instances that arrive for it later start a new batch. The
time of the last instance is the newest file's modification time, so a restarted gateway picks
up where it stopped.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.durable import commit, fsync_dir, write_temporary

UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def valid_uid(uid: str) -> bool:
    """A DICOM UID (digits and dots, at most 64 characters): safe as a file name."""
    return len(uid) <= 64 and UID.match(uid) is not None


@dataclass(frozen=True)
class Batch:
    """A complete series on disk."""

    id: str
    series_uid: str
    folder: Path


class Inbox:
    """Durable storage of received instances and the series-completion clock."""

    def __init__(self, data_dir: Path, series_timeout: float) -> None:
        self.incoming = data_dir / "incoming"
        self.batch_dir = data_dir / "batches"
        self.tmp = data_dir / "tmp"
        self.series_timeout = series_timeout
        for folder in (self.incoming, self.batch_dir, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():  # half-written files of a crashed process, never acknowledged
            leftover.unlink()
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        for series in self.incoming.iterdir():
            times = [f.stat().st_mtime for f in series.iterdir()] or [series.stat().st_mtime]
            self._last[series.name] = max(times)

    def store(self, series_uid: str, sop_uid: str, data: bytes, check: Callable[[Path], None] | None = None) -> Path:
        """Write one instance durably into its series; returns once it is on disk.

        ``check`` is called with the written temporary file before it joins its series; what it
        raises propagates and nothing is kept.

        Raises:
            ValueError: a UID is not a valid DICOM UID (or ``check`` refused the instance).
        """
        if not valid_uid(series_uid) or not valid_uid(sop_uid):
            raise ValueError(f"invalid UID (series {series_uid!r}, instance {sop_uid!r})")
        tmp = write_temporary(data, self.tmp)
        if check is not None:
            try:
                check(tmp)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        with self._lock:  # the series folder must not be moved between mkdir and rename
            folder = self.incoming / series_uid
            if not folder.is_dir():
                folder.mkdir()
                fsync_dir(self.incoming)
            path = folder / f"{sop_uid}.dcm"
            commit(tmp, path)
            self._last[series_uid] = time.time()
        return path

    def pending(self) -> dict[str, float]:
        """Series still receiving: UID -> time of the last instance."""
        with self._lock:
            return dict(self._last)

    def complete(self, now: float | None = None) -> list[Batch]:
        """Move every series quiet for ``series_timeout`` seconds to ``batches/``; return them."""
        now = time.time() if now is None else now
        done: list[Batch] = []
        with self._lock:
            for series_uid, last in sorted(self._last.items(), key=lambda item: item[1]):
                if now - last < self.series_timeout:
                    continue
                batch_id = f"{int(last * 1000):015d}-{series_uid}"
                target = self.batch_dir / batch_id
                (self.incoming / series_uid).rename(target)
                del self._last[series_uid]
                done.append(Batch(batch_id, series_uid, target))
            if done:
                fsync_dir(self.incoming)
                fsync_dir(self.batch_dir)
        return done

    def batches(self) -> list[Batch]:
        """Every complete series on disk, oldest first."""
        found = []
        for folder in sorted(self.batch_dir.iterdir()):
            series_uid = folder.name.partition("-")[2]
            found.append(Batch(folder.name, series_uid, folder))
        return found

    def remove(self, batch_id: str) -> None:
        """Delete a batch that has been dealt with."""
        shutil.rmtree(self.batch_dir / batch_id, ignore_errors=True)
