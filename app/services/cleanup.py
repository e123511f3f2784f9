"""The sweep of leftovers: what killed processes and stopped jobs left on disk, removed once nothing uses it.

The API process sweeps at start and every ``LRC_CLEANUP_INTERVAL_S`` (:class:`Sweeper`, a thread);
the data folder is shared by every process of the service, so one sweeper sees everything. What goes:

- **work folders of jobs** (``work/<kind>-<job id>-*``): a worker removes its job's folder when the
  job ends in its process; a killed worker leaves it. Removed once the job is finished (succeeded,
  failed or cancelled) for ``LRC_STALE_AFTER_S`` (a worker sees a cancellation within seconds), or,
  for a job with no record, once untouched for ``LRC_UPLOAD_ABANDONED_AFTER_S``;
- **model folders of jobs that registered nothing** (``models/projects/<project>/<name>/job-<id>``
  and the ``.job-<id>-*`` staging folders beside it): of failed or cancelled jobs, as old, when no
  model version was registered from them;
- **staging folders of requests** (``work/upload-*``, ``work/ui-image-*``) and temporary blob files
  (``blobs/.tmp``) that nothing touched for ``LRC_UPLOAD_ABANDONED_AFTER_S`` (the newest time of
  anything in them: a live upload touches its folder while it streams in) and that no request of
  this process uses;
- **blob files no record names** (no blob row), older than ``LRC_ORPHAN_BLOB_AFTER_S`` and not in
  flight in this process: a request killed between storing a file and recording it. They are removed
  by :func:`core.blobs.remove_unrecorded`, which holds their rows meanwhile: an upload that
  records the same content at that moment waits, then stores the file again from its own copy.

The log says how many things of each kind went and how many bytes, never their names (a file name
may hold a DICOM UID, and the logs hold no patient data).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from core import blobs
from core.context import Context
from core.records import jobs as job_records
from core.records import registry
from core.records.tables import now
from core.storage import live_staging

log = logging.getLogger(__name__)
JOB_FOLDER = re.compile(r"(?:segment|export|finetune|pretrain)-([0-9a-f]{32})-.+")  # worker.runners.common.scratch
MODEL_FOLDER = re.compile(
    r"job-([0-9a-f]{32})|\.job-([0-9a-f]{32})-.+"
)  # the folder, lrc.model_dirs.store.save_model's staging
STAGING = ("upload-", "ui-image-")
SHA256 = re.compile(r"[0-9a-f]{64}")
BATCH = 500  # blobs checked and removed in one transaction


@dataclass
class Swept:
    """What one sweep removed: counts per kind and bytes in all."""

    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0

    def add(self, kind: str, size: int) -> None:
        """Count one removed thing of ``kind`` and its ``size``."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.bytes += size


def newest_time(path: Path) -> float:
    """The latest modification time of ``path`` and of everything under it (links not followed)."""
    try:
        newest = path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                try:
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def disk_size(path: Path) -> int:
    """Bytes of the files under ``path`` (or of the file), links counted as links."""
    if not path.is_dir() or path.is_symlink():
        try:
            return path.lstat().st_size
        except FileNotFoundError:
            return 0
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def abandoned_staging(work_dir: Path, cutoff: float, live: set[Path]) -> list[Path]:
    """Staging folders under ``work_dir`` that nothing touched since ``cutoff`` (a time) and that are not ``live``."""
    if not work_dir.is_dir():
        return []
    found = [p for p in work_dir.iterdir() if p.name.startswith(STAGING) and p not in live]
    return sorted(p for p in found if newest_time(p) < cutoff)


def job_folders(root: Path, pattern: re.Pattern[str], depth: int = 0) -> dict[str, list[Path]]:
    """Job id -> the folders ``depth`` levels below ``root`` whose whole names match ``pattern`` (a group: the id)."""
    found: dict[str, list[Path]] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.glob("/".join(["*"] * (depth + 1)))):
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink():
            found.setdefault(match.group(match.lastindex or 0), []).append(path)
    return found


def finished_jobs(
    outcomes: dict[str, tuple[str, dt.datetime | None]], before: dt.datetime, states: Iterable[str]
) -> set[str]:
    """The jobs of ``outcomes`` (id -> state and finish time) in one of ``states`` that finished before ``before``."""
    wanted = set(states)
    return {job for job, (state, done) in outcomes.items() if state in wanted and done is not None and done < before}


def old_blobs(blob_dir: Path, cutoff: float, in_flight: set[str]) -> list[str]:
    """Blob files (``<aa>/<sha256>``) last written before ``cutoff`` (a time), but those ``in_flight``."""
    found = []
    for path in blob_dir.glob("??/*"):
        if not SHA256.fullmatch(path.name) or path.name in in_flight or path.parent.name != path.name[:2]:
            continue
        try:
            if path.lstat().st_mtime < cutoff:
                found.append(path.name)
        except FileNotFoundError:
            continue
    return sorted(found)


def _remove(path: Path, kind: str, swept: Swept) -> None:
    size = disk_size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    if not path.exists():
        swept.add(kind, size)


def _sweep_jobs(ctx: Context, stamp: float, swept: Swept) -> None:
    settings = ctx.settings
    work = job_folders(settings.work_dir, JOB_FOLDER)
    models = job_folders(settings.model_dir / "projects", MODEL_FOLDER, depth=2)
    ids = sorted(set(work) | set(models))
    if not ids:
        return
    with ctx.db.session() as session:
        outcomes = job_records.outcomes(session, ids)
        paths = [str(p) for folders in models.values() for p in folders]
        registered, at = registry.registered_by(session, sorted(models), paths)
    before = now() - dt.timedelta(seconds=settings.stale_after_s)
    done = finished_jobs(outcomes, before, job_records.FINAL)
    cutoff = stamp - settings.upload_abandoned_after_s
    for job, folders in work.items():
        for folder in folders:
            if job in done or (job not in outcomes and newest_time(folder) < cutoff):
                _remove(folder, "job work folders", swept)
    unregistered = finished_jobs(outcomes, before, ("failed", "cancelled")) - registered
    for job, folders in models.items():
        for folder in folders:
            if job in unregistered and str(folder) not in at:
                _remove(folder, "model folders of jobs that registered nothing", swept)


def _sweep_staging(ctx: Context, stamp: float, swept: Swept) -> None:
    cutoff = stamp - ctx.settings.upload_abandoned_after_s
    for folder in abandoned_staging(ctx.settings.work_dir, cutoff, live_staging()):
        _remove(folder, "abandoned staging folders", swept)
    tmp = ctx.store.tmp
    for leftover in sorted(tmp.iterdir()) if tmp.is_dir() else []:
        if leftover.is_file() and newest_time(leftover) < cutoff:
            _remove(leftover, "temporary blob files", swept)


def _sweep_blobs(ctx: Context, stamp: float, swept: Swept) -> None:
    candidates = old_blobs(ctx.store.root, stamp - ctx.settings.orphan_blob_after_s, ctx.store.in_flight())
    for start in range(0, len(candidates), BATCH):
        batch = candidates[start : start + BATCH]
        sizes = {sha: disk_size(ctx.store.path(sha)) for sha in batch}
        try:
            removed = blobs.remove_unrecorded(ctx, batch)
        except (SQLAlchemyError, OSError) as exc:  # recorded meanwhile, or no database: the next sweep tries again
            log.info("cleanup: kept %d old blob file(s) this time (%s)", len(batch), type(exc).__name__)
            continue
        for sha in removed:
            swept.add("unrecorded blob files", sizes[sha])


def sweep(ctx: Context) -> Swept:
    """Remove the leftovers the module's description lists; log and return what went."""
    stamp = time.time()
    swept = Swept()
    for part in (_sweep_jobs, _sweep_staging, _sweep_blobs):
        try:
            part(ctx, stamp, swept)
        except (SQLAlchemyError, OSError) as exc:  # one part failing leaves the others to do their work
            # The type only: an error's text may name a file, and a file name may hold a UID.
            log.warning("cleanup: %s skipped (%s)", part.__name__.removeprefix("_sweep_"), type(exc).__name__)
    if swept.counts:
        listed = ", ".join(f"{count} {kind}" for kind, count in sorted(swept.counts.items()))
        log.warning("cleanup: removed %s (%d bytes), left by stopped or killed processes", listed, swept.bytes)
    return swept


class Sweeper:
    """Runs :func:`sweep` at start and every ``LRC_CLEANUP_INTERVAL_S`` in a thread of the API process."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lrc-cleanup")

    def start(self) -> None:
        """Start sweeping."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the sweep in progress, if any (waits a few seconds at most)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sweep(self.ctx)
            except Exception as exc:  # never let the thread die: the next interval tries again
                log.warning("cleanup failed (%s); trying again in %.0f s", type(exc).__name__, self.interval)
            self._stop.wait(self.interval)

    @property
    def interval(self) -> float:
        """Seconds between sweeps."""
        return self.ctx.settings.cleanup_interval_s
