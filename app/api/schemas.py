"""Request and response bodies."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.options import FinetuneOptions, PretrainOptions
from core.records.registry import MODEL_NAME_PATTERN
from core.records.tables import REQUEST_KEY_MAX


class SeriesOut(BaseModel):
    """One series of a study."""

    id: str
    modality: str
    shape: list[int]
    spacing: list[float]
    description: str = ""
    series_instance_uid: str = ""
    dicom: bool
    exportable: bool = Field(default=False, description="DICOM SEG / RTSTRUCT results can reference this series")
    files: int
    warnings: list[str] = []


class StudyOut(BaseModel):
    """A stored study."""

    id: str
    study_instance_uid: str
    study_date: str = Field(default="", description="DICOM StudyDate, YYYY-MM-DD (empty for NIfTI)")
    description: str = Field(default="", description="DICOM StudyDescription")
    modalities: list[str] = Field(default=[], description="of its series, each once")
    slices: int = Field(default=0, description="slices of all its series")
    created_at: str | None
    series: list[SeriesOut]
    notes: list[str] = []
    duplicate: bool = False


class ProgressOut(BaseModel):
    """How far a job is."""

    fraction: float
    stage: str
    metrics: dict[str, Any]


class JobOut(BaseModel):
    """A job's state, progress, outcome."""

    id: str
    kind: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: ProgressOut
    result: dict[str, Any]
    links: dict[str, str]
    error: str | None
    attempts: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class Accepted(BaseModel):
    """A queued job (and the record it will fill)."""

    id: str | None = None
    job_id: str
    links: dict[str, str] = {}


class SegmentationIn(BaseModel):
    """Segment a stored series."""

    model_config = ConfigDict(extra="forbid")
    series_id: str
    model: str | None = Field(
        default=None,
        description="'name' (its production version), 'name:version', or none: the project's own production "
        "model when it has exactly one, else the shared starter model",
    )
    tiles: bool | None = Field(
        default=None,
        description=(
            "2D models: true runs over half-overlapping tiles of the model's training patch, as nnU-Net predicts, "
            "false over whole slices; none: as the model's card says (tiles for models fine-tuned from pre-trained "
            "weights). Tiles: often better Dice, about 3x the model time (docs/research/REPORT.md)"
        ),
    )


IDEMPOTENCY_KEY = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=REQUEST_KEY_MAX,
    pattern=r"^[\x20-\x7e]+$",
    description=(
        "Any 1 to 200 printable ASCII characters, new for each request (a UUID): the same key again in this "
        "project returns the first request's answer without a new job; with another body it is refused (409)"
    ),
)


class SegmentationOut(BaseModel):
    """A segmentation and where its results are."""

    id: str
    series_id: str
    model: dict[str, Any]
    tiles: bool | None = Field(description="as requested (none: as the model's card says)")
    tile: int | None = Field(description="tile side the model ran with (none: whole slices, or not done yet)")
    job_id: str
    state: str
    export_job_id: str | None
    formats: list[str]
    created_at: str | None


MAX_SERIES = 1000  # series (or studies) one pre-training names; memory is checked as well


class FinetuneIn(BaseModel):
    """Fine-tune a model on a dataset."""

    model_config = ConfigDict(extra="forbid")
    dataset_id: str
    base_model: str | None = Field(default=None, description="'name[:version]' to start from; none: from scratch")
    name: str | None = Field(default=None, pattern=MODEL_NAME_PATTERN, description="model to add a version to")
    options: FinetuneOptions = FinetuneOptions()


class PretrainIn(BaseModel):
    """Pre-train on stored, unlabeled series."""

    model_config = ConfigDict(extra="forbid")
    series_ids: list[str] = Field(default=[], max_length=MAX_SERIES, description="each once")
    study_ids: list[str] = Field(default=[], max_length=MAX_SERIES, description="each once")
    method: Literal["moco", "lrc", "moco+lrc"] = "moco+lrc"
    name: str = Field(default="pretrained", pattern=MODEL_NAME_PATTERN)
    options: PretrainOptions = PretrainOptions()

    @model_validator(mode="after")
    def _each_once(self) -> PretrainIn:
        for field in ("series_ids", "study_ids"):
            ids = getattr(self, field)
            if len(set(ids)) != len(ids):
                twice = sorted({i for i in ids if ids.count(i) > 1})[:3]
                raise ValueError(f"{field} names {', '.join(twice)} more than once")
        return self


class PromoteIn(BaseModel):
    """Promote a version; ``override`` (admins only) skips the gate and is recorded."""

    model_config = ConfigDict(extra="forbid")
    override: bool = False
    reason: str = Field(default="", max_length=1000, description="why (needed to override a change of labels)")


class RollbackIn(BaseModel):
    """Roll back to the previous production version."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=1000)


class KeyIn(BaseModel):
    """Create an API key."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=128)
    role: Literal["viewer", "submitter", "admin"]


class KeyOut(BaseModel):
    """A key; a new one's token is shown only when it is created."""

    id: str
    name: str
    role: str
    project: str
    revoked: bool = False
    token: str | None = None
