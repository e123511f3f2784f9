"""Request and response bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.records.models import REQUEST_KEY_MAX
from core.records.registry import MODEL_NAME_PATTERN
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.limits import SEED_MAX


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
Feature = Annotated[int, Field(ge=1, le=1024)]
Stage = Literal["conv_0", "down_1", "down_2", "down_3", "down_4", "upcat_4", "upcat_3", "upcat_2", "upcat_1"]


class FinetuneOptions(BaseModel):
    """Fine-tuning settings (see ``lrc.train.finetune.FinetuneConfig``)."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(default=2000, ge=1, le=1_000_000)
    batch_size: int = Field(default=8, ge=1, le=1024)
    patch: int = Field(default=128, ge=16, le=1024, multiple_of=16)
    validate_every: int = Field(default=100, ge=1, le=1_000_000)
    spacing: float = Field(default=1.5, ge=0.1, le=10, description="in-plane model spacing, mm (from scratch)")
    canvas: int = Field(default=256, ge=16, le=2048, multiple_of=16)
    spatial_dims: Literal[2, 3] = 2
    patch_depth: int = Field(default=32, ge=16, le=512, multiple_of=16)
    features: list[Feature] | None = Field(default=None, min_length=6, max_length=6)
    lr: float = Field(default=1e-3, gt=0, le=1)
    backbone_lr_factor: float | None = Field(
        default=None,
        ge=0,
        le=10,
        description="learning-rate multiplier of the base model's layers (from scratch: the same layers); none: 3 from "
        "a pre-trained (self-supervised) model, 1 from a segmentation model and from scratch",
    )
    transfer: Literal["all", "encoder"] = Field(default="all", description="what a pre-trained base model gives")
    warmup_steps: int = Field(default=0, ge=0, description="steps with the pre-trained layers frozen (< steps)")
    shrink: float = Field(default=1.0, gt=0, le=10, description="shrink and perturb: pre-trained factor")
    perturb: float = Field(default=0.0, ge=0, le=10, description="shrink and perturb: fresh-init factor")
    anchor_weight: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="L2-SP: decay of the base model's layers towards their starting values instead of towards 0 "
        "(an experiment, off by default: docs/research/REPORT.md); lr x their rate factor x this at most 1",
    )
    reinit: list[Stage] = Field(default=[], max_length=9, description="U-Net stages of the base model that start fresh")
    augment_scale: tuple[float, float] = Field(
        default=(1.0, 1.0), description="2D patches' field of view as a multiple of the patch (min, max)"
    )
    augment_rotate: float = Field(default=0.0, ge=0, le=180, description="2D patches rotated by up to +- this, degrees")
    flip: bool = Field(
        default=False,
        description="mirror half of the patches left-right (hides the side: only without left/right labels)",
    )
    tile: Literal["slice", "patch"] | int | None = Field(
        default=None,
        description="how the model predicts unless a request says otherwise, and in validation: 'slice' (whole "
        "slices), 'patch' (tiles of the training patch) or a tile side; none: 'patch' from a pre-trained "
        "(self-supervised) model, as the base model predicts from a segmentation model, 'slice' from scratch",
    )
    patience: int = Field(default=5, ge=1, le=1000)
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = Field(default=0, ge=0, le=SEED_MAX)

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneOptions:
        """The training's own checks (the rules between fields), so that bad options never make a job."""
        options = self.model_dump(exclude_none=True)
        if "features" in options:
            options["features"] = tuple(options["features"])
        FinetuneConfig(**options)  # its ValueError reaches the client as a 422 with the same message
        return self


class FinetuneIn(BaseModel):
    """Fine-tune a model on a dataset."""

    model_config = ConfigDict(extra="forbid")
    dataset_id: str
    base_model: str | None = Field(default=None, description="'name[:version]' to start from; none: from scratch")
    name: str | None = Field(default=None, pattern=MODEL_NAME_PATTERN, description="model to add a version to")
    options: FinetuneOptions = FinetuneOptions()


class PretrainOptions(BaseModel):
    """Pre-training settings (see ``lrc.train.pretrain.PretrainConfig``)."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(default=1000, ge=1, le=1_000_000)
    batch_size: int = Field(default=16, ge=2, le=1024)
    spacing: float = Field(default=1.5, ge=0.1, le=10, description="in-plane model spacing, mm")
    canvas: int = Field(default=256, ge=16, le=2048, multiple_of=16)
    view_size: int = Field(default=192, ge=16, le=2048, multiple_of=16)
    features: list[Feature] | None = Field(default=None, min_length=6, max_length=6)
    queue_size: int = Field(default=4096, ge=8, le=65536, description="MoCo's queue of negatives")
    regions_per_image: int = Field(default=16, ge=1, le=256, description="LRC: super-pixels sampled per slice (K)")
    pixels_per_region: int = Field(default=8, ge=1, le=256, description="LRC: pixels sampled per super-pixel (M)")
    decorrelation_weight: float = Field(default=0.0, ge=0, le=100, description="penalty against feature collapse")
    local_negatives: Literal["batch", "image"] = Field(
        default="batch", description="LRC negatives: other regions of the whole batch or of the same image"
    )
    negative_margin: float = Field(
        default=0.0, ge=0, le=1, description="LRC: regions closer than this in mean intensity (0-1) are no negatives"
    )
    momentum: float = Field(default=0.999, ge=0, lt=1, description="MoCo key-encoder momentum")
    superpixel_scale: float = Field(
        default=100.0, gt=0, le=10_000, description="Felzenszwalb scale of LRC's super-pixels (larger: coarser)"
    )
    seed: int = Field(default=0, ge=0, le=SEED_MAX)


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
