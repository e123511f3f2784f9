"""Studies: parse uploaded files with :mod:`lrc.io`, store each series' files once, record them."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core import blobs
from core.context import Context
from core.records import studies as records
from core.records.tables import Series, Study, new_id
from lrc.io import ArchiveLimits, ImageIOError, ReadOptions, UnsupportedInput, VolumeInfo
from lrc.io.archive import collect_files
from lrc.io.dicom_read import inspect_dicom
from lrc.io.nifti import inspect_nifti, is_nifti_path
from lrc.io.volume import MAX_VOXELS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """A file handed over by a user, already on disk."""

    name: str
    path: Path
    sha256: str


def upload_key(uploads: list[Upload]) -> str:
    """Identity of an upload: the hash of its files' hashes (order and names do not matter)."""
    return hashlib.sha256("\n".join(sorted(u.sha256 for u in uploads)).encode()).hexdigest()


def read_upload(
    paths: list[Path], folder: Path, limit: int, max_voxels: int = MAX_VOXELS
) -> tuple[list[tuple[VolumeInfo, Path | None]], list[str]]:
    """Every volume in files and zips, each with its NIfTI file (``None`` for DICOM); plus notes.

    ``limit`` bounds what zips may extract (4x, at least 1 GiB), ``max_voxels`` each image, before decoding.
    Each image is checked as the workers' readers would read it, without ever being held whole: NIfTI
    voxels are streamed in slabs, DICOM headers read without pixels and compressed planes decoded one at
    a time (:func:`lrc.io.nifti.inspect_nifti`, :func:`lrc.io.dicom_read.inspect_dicom`), so that this
    process's memory does not grow with an image's voxel count.

    Raises:
        ImageIOError: nothing readable (the reader's message says why).
    """
    limits = ArchiveLimits(max_total_bytes=max(limit * 4, 1 << 30))
    collected = collect_files(paths, folder / "unzipped", limits)
    notes = list(collected.notes)
    found: list[tuple[VolumeInfo, Path | None]] = []
    errors: list[ImageIOError] = []
    nifti = [f for f in collected.files if is_nifti_path(f)]
    dicom = [f for f in collected.files if not is_nifti_path(f)]
    for path in nifti:
        try:
            found.append((inspect_nifti(path, max_voxels=max_voxels), path))
        except ImageIOError as exc:
            errors.append(exc)
    if dicom:
        try:
            options = ReadOptions(extract_dir=folder / "dicom", limits=limits, max_voxels=max_voxels)
            result = inspect_dicom(dicom, options)
        except ImageIOError as exc:
            if not nifti:
                raise
            notes.append(f"no DICOM image besides the NIfTI files ({exc})")
        else:
            found += [(v, None) for v in result.volumes]
            errors += result.errors
            notes += result.notes
    if not found:
        raise errors[0] if errors else UnsupportedInput("no image found in the upload")
    notes += [f"series not read: {e}" for e in errors]
    return found, notes


def _name(names: dict[Path, str], path: Path | None) -> str:
    return "" if path is None else names.get(path, path.name)


@dataclass
class Staged:
    """A study read from an upload with its files stored as blobs, not yet recorded (see :func:`stage`)."""

    study: Study
    new: bool  # False: ``study`` is the project's earlier study of the same files; nothing to record
    blobs: dict[str, Path] = field(default_factory=dict)  # sha256 -> the file it was stored from
    volumes: list[VolumeInfo] = field(default_factory=list)  # each new series as read, in study.series' order


def ingest(
    ctx: Context, uploads: list[Upload], folder: Path, created_by: str | None, project: str
) -> tuple[Study, bool]:
    """Store an upload as a study of ``project``; ``(study, False)`` when the project had the same files before.

    Raises:
        UnsupportedInput: no files.
        ImageIOError: the files hold no readable image.
    """
    # Disk full or database gone half-way: the blobs this upload created are removed, unless another record
    # uses them or the records cannot be asked (blobs.discard says why they stay then).
    with ctx.store.undo_on_error(partial(blobs.discard, ctx)):
        staged = stage(ctx, uploads, folder, created_by, project)
        if staged.new:
            with ctx.db.session() as session:
                record(session, ctx, staged)
    if staged.new:
        log.info("study %s: %d series from %d file(s)", staged.study.id, len(staged.study.series), len(uploads))
    return staged.study, staged.new


def stage(ctx: Context, uploads: list[Upload], folder: Path, created_by: str | None, project: str) -> Staged:
    """Read an upload and store its files as blobs, recording nothing yet: a caller that records more (a
    dataset) records the study with the rest, in one transaction, by :func:`record`. Study and series
    have their ids already.

    Call it inside :meth:`~core.storage.BlobStore.undo_on_error`, with :func:`core.blobs.discard`.

    Raises:
        UnsupportedInput: no files.
        ImageIOError: the files hold no readable image.
    """
    if not uploads:
        raise UnsupportedInput("no files in the upload: send them in the multipart field 'files'")
    key = upload_key(uploads)
    with ctx.db.session() as session:
        existing = records.find_upload(session, key, project)
        if existing is not None:
            return Staged(existing, new=False)
    settings = ctx.settings
    volumes, notes = read_upload([u.path for u in uploads], folder, settings.max_upload_bytes, settings.max_voxels)
    study = Study(
        id=new_id(),
        upload_key=key,
        created_by=created_by,
        project=project,
        files=[{"name": u.name, "sha256": u.sha256} for u in uploads],
        notes=notes,
    )
    staged = Staged(study, new=True)
    names = {u.path: u.name for u in uploads}
    for volume, nifti_path in volumes:
        files = [nifti_path] if nifti_path is not None else list(volume.source.files if volume.source else ())
        entries = []
        for path in files:
            sha, _ = ctx.store.put_file(path)
            staged.blobs[sha] = path
            entries.append({"name": names.get(path, path.name), "sha256": sha})
        source = volume.source
        if source and not study.study_instance_uid:
            study.study_instance_uid = source.study_instance_uid
        if source and source.headers and not study.study_date:
            study.study_date, study.study_description = _study_header(source.headers[0])
        staged.volumes.append(volume)
        study.series.append(
            Series(
                id=new_id(),
                modality=volume.modality,
                shape=list(volume.shape),
                spacing=[round(s, 6) for s in volume.spacing],
                affine=volume.affine.tolist(),
                series_instance_uid=source.series_instance_uid if source else "",
                description=source.series_description if source else _name(names, nifti_path),
                dicom=source is not None,
                exportable=bool(source and source.has_uids and source.headers),
                files=entries,
                warnings=list(volume.warnings),
            )
        )
    return staged


def record(session: Session, ctx: Context, staged: Staged) -> None:
    """Record a staged new study, its series and its blobs in ``session``."""
    blobs.record(session, ctx.store, staged.blobs)
    session.add(staged.study)


def find(ctx: Context, project: str, limit: int, offset: int) -> list[Study]:
    """The studies of ``project``, newest first, with their series."""
    with ctx.db.session() as session:
        return records.list_studies(session, project, limit, offset)


def get(ctx: Context, study_id: str, project: str) -> Study:
    """A study of ``project`` with its series."""
    with ctx.db.session() as session:
        return records.get_study(session, study_id, project)


def delete(ctx: Context, study_id: str, project: str) -> None:
    """Delete a study of ``project`` and the blobs nothing else references (in any project)."""
    with ctx.db.session() as session:
        orphans = records.delete_study(session, records.get_study(session, study_id, project))
    ctx.store.delete(orphans)


def _study_header(header: Any) -> tuple[str, str]:
    """StudyDate (``YYYYMMDD`` or empty) and StudyDescription (printable, at most 256 characters) of a header."""
    date = str(header.get("StudyDate", "") or "").strip()
    description = "".join(c for c in str(header.get("StudyDescription", "") or "") if c.isprintable()).strip()
    return (date if len(date) == 8 and date.isdigit() else ""), description[:256]
