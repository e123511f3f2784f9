"""Tables: studies and series, blobs, datasets, jobs, segmentations (and their DICOM instances), model versions,
API keys."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

REQUEST_KEY_MAX = 200  # characters of an Idempotency-Key
MAX_VERSION = 2**31 - 1  # model versions are INTEGER columns: 32 bits in PostgreSQL
REQUEST_KEY_INDEX = "uq_segmentations_project_request_key"


def new_id() -> str:
    """A random id (32 hex characters)."""
    return uuid.uuid4().hex


def now() -> dt.datetime:
    """The current UTC time."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base; JSON columns hold dicts and lists."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Blob(Base):
    """A stored file, named by the sha256 of its content (stored once however often uploaded)."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class Study(Base):
    """One upload: the files handed over and the series found in them."""

    __tablename__ = "studies"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64), index=True)  # see core.records.projects
    upload_key: Mapped[str] = mapped_column(String(64), index=True)  # sha256 over the sorted file hashes
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    study_date: Mapped[str] = mapped_column(String(8), default="")  # DICOM StudyDate, YYYYMMDD
    study_description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    files: Mapped[list[Any]] = mapped_column(default=list)  # [{"name", "sha256"}]
    notes: Mapped[list[Any]] = mapped_column(default=list)
    series: Mapped[list[Series]] = relationship(back_populates="study", cascade="all, delete-orphan")


class Series(Base):
    """One image volume: a DICOM series or a NIfTI file, with its geometry and the files to re-read it."""

    __tablename__ = "series"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    shape: Mapped[list[Any]] = mapped_column()
    spacing: Mapped[list[Any]] = mapped_column()
    affine: Mapped[list[Any]] = mapped_column()
    series_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    dicom: Mapped[bool] = mapped_column(Boolean, default=False)
    exportable: Mapped[bool] = mapped_column(Boolean, default=False)  # DICOM with every UID: SEG can reference it
    files: Mapped[list[Any]] = mapped_column(default=list)  # [{"name", "sha256"}] in slice order
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    study: Mapped[Study] = relationship(back_populates="series")


class Dataset(Base):
    """A named set of (image series, label map) pairs with a label table."""

    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64), index=True)  # see core.records.projects
    name: Mapped[str] = mapped_column(String(128))
    labels: Mapped[dict[str, Any]] = mapped_column()  # {"5": "liver"}
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cases: Mapped[list[DatasetCase]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="DatasetCase.position"
    )


class DatasetCase(Base):
    """One labelled case: an image series and its label map file (NIfTI or DICOM SEG)."""

    __tablename__ = "dataset_cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    series_id: Mapped[str] = mapped_column(ForeignKey("series.id"))
    label_name: Mapped[str] = mapped_column(String(256))
    label_sha256: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[Dataset] = relationship(back_populates="cases")


class Job(Base):
    """A unit of queued work; the source of truth for its state (not the broker)."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64), index=True)  # see core.records.projects
    kind: Mapped[str] = mapped_column(String(16))  # segment, finetune, pretrain, export
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(64), default="queued")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dispatch_token: Mapped[str] = mapped_column(String(32), default=new_id)
    worker: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    dispatched_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Segmentation(Base):
    """A segmentation of one series by one model version; outputs by format.

    ``request_key`` is the ``Idempotency-Key`` of the request that made it, unique per project (a unique
    index, not a constraint: SQLite can add an index to an old table, not a constraint); rows without a
    key never collide (NULLs are distinct).
    """

    __tablename__ = "segmentations"
    __table_args__ = (Index(REQUEST_KEY_INDEX, "project", "request_key", unique=True),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64), index=True)  # see core.records.projects
    series_id: Mapped[str] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    export_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)  # format -> sha256
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    request_key: Mapped[str | None] = mapped_column(String(REQUEST_KEY_MAX), nullable=True)


class ResultInstance(Base):
    """A DICOM instance the service produced (SEG, RTSTRUCT), indexed for DICOMweb search and retrieve.

    ``attributes`` caches the header's search attributes as DICOM JSON, so that QIDO-RS reads no file.
    """

    __tablename__ = "result_instances"
    sop_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)  # see core.records.projects
    segmentation_id: Mapped[str] = mapped_column(ForeignKey("segmentations.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(16))  # dicom-seg, rtstruct
    sha256: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class ModelVersion(Base):
    """A registered model directory: ``name`` + ``version``, its card and its status.

    ``project`` is a project's name, or ``SHARED`` for versions every project sees read-only (the
    starter); see :mod:`core.records.registry` for how a project's versions overlay shared ones.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("project", "name", "version", name="uq_model_versions_project_name_version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64), index=True)  # see core.records.projects
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1 to MAX_VERSION
    kind: Mapped[str] = mapped_column(String(16))  # segmentation, pretrained
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # candidate, production, archived
    path: Mapped[str] = mapped_column(String(1024))
    card: Mapped[dict[str, Any]] = mapped_column()
    comparison: Mapped[dict[str, Any]] = mapped_column(default=dict)  # held-out scores vs. production
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class Promotion(Base):
    """A change of a model's production version (promotion or roll-back), with who and why."""

    __tablename__ = "promotions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(64), index=True)  # see core.records.projects
    name: Mapped[str] = mapped_column(String(128), index=True)
    from_version_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_version_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(16))  # promote, rollback
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class ApiKey(Base):
    """An API key: only the sha256 of the token is stored."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project: Mapped[str] = mapped_column(String(64), index=True)  # see core.records.projects
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))  # viewer, submitter, admin
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class WorkerBeat(Base):
    """Last sign of life of a worker process (for readiness and the recovery sweep)."""

    __tablename__ = "worker_beats"
    hostname: Mapped[str] = mapped_column(String(256), primary_key=True)
    queues: Mapped[str] = mapped_column(String(256), default="")
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
