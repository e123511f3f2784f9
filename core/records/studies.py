"""Studies, series and the blobs they reference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from core.errors import NotFound
from core.records.tables import Blob, DatasetCase, Segmentation, Series, Study, now

CHUNK = 500  # hashes in one IN list: far below any driver's limit on parameters (SQLite's was 999)


def add_blobs(session: Session, sizes: Mapping[str, int]) -> None:
    """Record stored blobs (``sha256 -> size``), leaving the rows that exist as they are.

    A row that a concurrent transaction is adding is waited for (until it commits or rolls back): two
    requests recording the same new content never fail on the unique key. The rows are added in the order of their
    hashes, so that two transactions adding rows the other adds too wait for each other instead of
    deadlocking (PostgreSQL).
    """
    if not sizes:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows = [{"sha256": sha, "size": sizes[sha], "created_at": now()} for sha in sorted(sizes)]
    session.execute(insert(Blob).on_conflict_do_nothing(index_elements=[Blob.sha256]), rows)


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
    """Those of ``shas`` that have no blob row, in the order given, once each.

    The row alone tells that a blob is in use (in any project), so no record is searched: every writer
    adds the rows of the blobs it references in the transaction that commits the reference
    (:func:`add_blobs`, through :func:`core.blobs.record`), and :func:`delete_study` drops only
    the rows of blobs that nothing references. Databases of earlier versions hold a row for every
    reference too: the blob table dates from the first version, whose writers committed each row with
    its reference or before it (a dataset's label rows, case by case).
    """
    unique = list(dict.fromkeys(shas))
    recorded: set[str] = set()
    for start in range(0, len(unique), CHUNK):
        recorded.update(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(unique[start : start + CHUNK]))))
    return [sha for sha in unique if sha not in recorded]


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
