"""Studies, series and the blobs they reference."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session, selectinload

from app.errors import NotFound
from app.records.models import Blob, DatasetCase, Segmentation, Series, Study


def add_blob(session: Session, sha256: str, size: int) -> None:
    """Record a stored blob (once)."""
    if session.get(Blob, sha256) is None:
        session.add(Blob(sha256=sha256, size=size))


def find_upload(session: Session, upload_key: str, project: str) -> Study | None:
    """A study of ``project`` made from exactly the same files, if any."""
    query = select(Study).where(Study.upload_key == upload_key, Study.project == project)
    return session.scalars(query.options(selectinload(Study.series))).first()


def get_study(session: Session, study_id: str, project: str) -> Study:
    """The study of ``project`` with its series, or :class:`NotFound`."""
    query = select(Study).where(Study.id == study_id, Study.project == project)
    study = session.scalars(query.options(selectinload(Study.series))).first()
    if study is None:
        raise NotFound("study", study_id)
    return study


def list_studies(session: Session, project: str, limit: int, offset: int) -> list[Study]:
    """The studies of ``project``, newest first."""
    query = select(Study).where(Study.project == project).options(selectinload(Study.series))
    return list(session.scalars(query.order_by(Study.created_at.desc(), Study.id).limit(limit).offset(offset)))


def get_series(session: Session, series_id: str, project: str) -> Series:
    """The series (of a study of ``project``), or :class:`NotFound`."""
    query = select(Series).join(Study).where(Series.id == series_id, Study.project == project)
    series = session.scalars(query).first()
    if series is None:
        raise NotFound("series", series_id)
    return series


def delete_study(session: Session, study: Study) -> list[str]:
    """Delete a study, its series and their segmentations; return blob hashes nothing references any more."""
    shas: set[str] = set()  # the upload's own files (zips) are not kept, only the series' files
    series_ids = [s.id for s in study.series]
    for series in study.series:
        shas |= {f["sha256"] for f in series.files}
    for seg in session.scalars(select(Segmentation).where(Segmentation.series_id.in_(series_ids))):
        shas |= set(seg.outputs.values())
        session.delete(seg)
    session.delete(study)
    session.flush()
    orphans = [sha for sha in shas if not _referenced(session, sha)]
    for sha in orphans:
        blob = session.get(Blob, sha)
        if blob is not None:
            session.delete(blob)
    return orphans


def unused_blobs(session: Session, shas: list[str]) -> list[str]:
    """Those of ``shas`` that have no blob row and that no record references (in any project)."""
    recorded = set(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(shas))))
    return [sha for sha in dict.fromkeys(shas) if sha not in recorded and not _referenced(session, sha)]


def _referenced(session: Session, sha: str) -> bool:
    """True when any series, segmentation or dataset case still uses the blob.

    The JSON columns are searched as text (a sha256 cannot occur in them by accident).
    """
    queries = (
        select(Series.id).where(cast(Series.files, String).contains(sha)),
        select(Segmentation.id).where(cast(Segmentation.outputs, String).contains(sha)),
        select(DatasetCase.id).where(DatasetCase.label_sha256 == sha),
    )
    return any(session.scalars(query.limit(1)).first() is not None for query in queries)


def series_entries(series: Series) -> list[tuple[str, str]]:
    """``(name, sha256)`` of the files to read the series from, in order."""
    return [(f["name"], f["sha256"]) for f in series.files]


def series_summary(series: Series) -> dict[str, Any]:
    """The public description of a series."""
    return {
        "id": series.id,
        "modality": series.modality,
        "shape": series.shape,
        "spacing": series.spacing,
        "description": series.description,
        "series_instance_uid": series.series_instance_uid,
        "dicom": series.dicom,
        "exportable": series.exportable,
        "files": len(series.files),
        "warnings": series.warnings,
    }
