"""The produced DICOM instances (SEG, RTSTRUCT): recorded at export, searched and fetched for DICOMweb."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.records.tables import ResultInstance, Segmentation


@dataclass(frozen=True)
class Match:
    """Search keys (each a list of accepted values; empty: any) and the page to return."""

    study_instance_uid: Sequence[str] = ()
    series_instance_uid: Sequence[str] = ()
    sop_instance_uid: Sequence[str] = ()
    sop_class_uid: Sequence[str] = ()
    modality: Sequence[str] = ()
    patient_id: Sequence[str] = ()
    limit: int = 100
    offset: int = 0


@dataclass
class Group:
    """A study or series found by a search: one of its instances (for the shared attributes) and counts."""

    first: ResultInstance
    series: int
    instances: int
    modalities: list[str] = field(default_factory=list)


def add_instance(session: Session, instance: ResultInstance) -> bool:
    """Record an instance unless its SOP Instance UID is already recorded; whether it was added."""
    if session.get(ResultInstance, instance.sop_instance_uid) is not None:
        return False
    session.add(instance)
    return True


def _where(query: Select, project: str, match: Match) -> Select:
    query = query.where(ResultInstance.project == project)
    columns = (
        (ResultInstance.study_instance_uid, match.study_instance_uid),
        (ResultInstance.series_instance_uid, match.series_instance_uid),
        (ResultInstance.sop_instance_uid, match.sop_instance_uid),
        (ResultInstance.sop_class_uid, match.sop_class_uid),
        (ResultInstance.modality, match.modality),
        (ResultInstance.patient_id, match.patient_id),
    )
    for column, values in columns:
        if values:
            query = query.where(column.in_(list(values)))
    return query


def find_instances(session: Session, project: str, match: Match) -> list[ResultInstance]:
    """Matching instances of ``project``, oldest first, one page."""
    query = _where(select(ResultInstance), project, match)
    query = query.order_by(ResultInstance.created_at, ResultInstance.sop_instance_uid)
    return list(session.scalars(query.limit(match.limit).offset(match.offset)))


def find_groups(session: Session, project: str, match: Match, level: str) -> list[Group]:
    """Matching studies (``level="study"``) or series (``"series"``) of ``project``, oldest first, one page,
    with counts."""
    key = ResultInstance.study_instance_uid if level == "study" else ResultInstance.series_instance_uid
    query = _where(
        select(
            key,
            func.min(ResultInstance.sop_instance_uid),
            func.count(func.distinct(ResultInstance.series_instance_uid)),
            func.count(),
        ),
        project,
        match,
    ).group_by(key)
    query = query.order_by(func.min(ResultInstance.created_at), key).limit(match.limit).offset(match.offset)
    rows = session.execute(query)
    groups: list[Group] = []
    for value, first_uid, series, count in rows:
        first = session.get(ResultInstance, first_uid)
        assert first is not None
        query = select(ResultInstance.modality).distinct().where(key == value)
        modalities = session.scalars(_where(query, project, match))
        groups.append(Group(first, int(series), int(count), sorted(modalities)))
    return groups


def indexed_outputs(session: Session) -> set[tuple[str, str]]:
    """(segmentation id, format) of every recorded instance."""
    rows = session.execute(select(ResultInstance.segmentation_id, ResultInstance.format))
    return {(segmentation_id, fmt) for segmentation_id, fmt in rows}


def exported_segmentations(session: Session) -> list[Segmentation]:
    """Segmentations that went through a DICOM export (their outputs may hold SEG or RTSTRUCT)."""
    return list(session.scalars(select(Segmentation).where(Segmentation.export_job_id.is_not(None))))
