"""One settings object per process, from ``LRC_*`` environment variables, validated at start-up.

Embedded defaults need no external service: SQLite records, a local blob directory and a
SQLite-backed Celery transport, all under ``LRC_DATA_DIR``. Scaled mode sets
``LRC_DATABASE_URL`` (PostgreSQL) and ``LRC_BROKER_URL`` (Redis).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lrc.device import check_device_name
from lrc.io.volume import MAX_VOXELS

MIN_KEY_LENGTH = 16
MAX_AGE_S = 30 * 86_400  # the longest age setting: a month


class Settings(BaseSettings):
    """Service settings (environment variables ``LRC_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="LRC_", extra="ignore")

    environment: str = Field(
        default="production", description="'development' relaxes nothing yet; recorded in /healthz."
    )
    data_dir: Path = Field(
        default=Path(".lrc-data"), description="Blobs, models, SQLite records and the embedded broker."
    )
    database_url: str = Field(default="", description="SQLAlchemy URL; default sqlite:///<data_dir>/records.sqlite.")
    broker_url: str = Field(default="", description="Celery broker; default sqla+sqlite:///<data_dir>/broker.sqlite.")
    max_upload_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="Largest request body accepted by upload routes."
    )
    max_voxels: int = Field(
        default=MAX_VOXELS,
        gt=0,
        description="Largest image an upload may hold (voxels), checked before it is decoded: a few hundred"
        " bytes of compressed DICOM or gzip NIfTI can claim gigabytes.",
    )
    worker_memory_bytes: int = Field(
        default_factory=lambda: physical_memory(),
        gt=0,
        description="Memory a training worker may use; jobs estimated to need more are refused before they are"
        " queued. Default: this machine's memory (set it where workers run on other machines).",
    )
    max_dataset_cases: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Most cases one dataset may hold (fine-tuning reads every case into a worker's memory).",
    )
    bootstrap_admin_key: str | None = Field(
        default=None, description="Creates an admin API key with this value on start."
    )
    public_url: str | None = Field(
        default=None,
        description="The service's URL as clients reach it (https://lrc.example.org or with a path behind a proxy);"
        " links the API hands out (DICOMweb RetrieveURL) start with it. Unset: the scheme the request came with"
        " (a trusted proxy's X-Forwarded-Proto) and the address it came in on, never the request's Host header.",
    )
    # Jobs and recovery.
    max_attempts: int = Field(default=3, ge=1, description="Runs of one job before it is failed as lost.")
    heartbeat_s: float = Field(default=10.0, gt=0, description="Seconds between heartbeats of a running job.")
    stale_after_s: float = Field(default=60.0, gt=0, description="A running job without heartbeat this long is lost.")
    sweep_interval_s: float = Field(default=30.0, gt=0, description="Seconds between recovery sweeps in a worker.")
    redispatch_queued_after_s: float = Field(
        default=900.0, gt=0, description="A job queued this long is sent again (its message may be lost)."
    )
    visibility_timeout_s: int = Field(
        default=6 * 3600, gt=0, description="Redis: unacked task comes back after this long."
    )
    # Leftovers (app.services.cleanup, run by the API process).
    cleanup_interval_s: float = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="Seconds between sweeps of leftovers: work folders of finished jobs, abandoned uploads,"
        " blob files no record names.",
    )
    upload_abandoned_after_s: float = Field(
        default=3600.0,
        ge=1,
        le=MAX_AGE_S,
        description="An upload's staging folder (work/upload-*) or temporary blob file untouched this long"
        " is removed (its request died with its process). Longer than the longest upload takes to be read.",
    )
    orphan_blob_after_s: float = Field(
        default=3600.0, ge=1, le=MAX_AGE_S, description="A blob file no record names is removed once this old."
    )
    # Workers.
    device: str = Field(default="auto", description="auto, cpu or cuda[:N] for model work.")
    predictor_cache_size: int = Field(default=2, ge=1, description="Models an inference worker keeps loaded.")
    worker_torch_threads: int | None = Field(
        default=None,
        ge=0,
        description="Torch threads per worker process; unset: CPUs / lrc serve's worker processes; 0: torch's default.",
    )
    starter_model_dir: Path | None = Field(default=None, description="Model registered as production on first start.")
    starter_model_name: str = "ct-abdomen-starter"

    @field_validator("bootstrap_admin_key")
    @classmethod
    def _key_strength(cls, value: str | None) -> str | None:
        if value is not None and len(value) < MIN_KEY_LENGTH:
            raise ValueError(f"LRC_BOOTSTRAP_ADMIN_KEY must be at least {MIN_KEY_LENGTH} characters")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        return check_device_name(value)  # whether the workers' machine has it is their check

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"LRC_PUBLIC_URL must be an http(s) URL with a host, got {value!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"LRC_PUBLIC_URL must have no query, fragment or user name, got {value!r}")
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number in 0..65535)
        except ValueError as exc:
            raise ValueError(f"LRC_PUBLIC_URL has an invalid port: {value!r}") from exc
        return value.rstrip("/")

    @model_validator(mode="after")
    def _defaults_in_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'records.sqlite'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.sqlite'}"
        if self.stale_after_s <= self.heartbeat_s:
            raise ValueError("LRC_STALE_AFTER_S must be longer than LRC_HEARTBEAT_S")
        return self

    @property
    def blob_dir(self) -> Path:
        """Content-addressed files."""
        return self.data_dir / "blobs"

    @property
    def model_dir(self) -> Path:
        """Registered model directories."""
        return self.data_dir / "models"

    @property
    def work_dir(self) -> Path:
        """Scratch space for uploads and jobs (same file system as the blobs: renames are atomic)."""
        return self.data_dir / "work"

    def prepare(self) -> None:
        """Create the data folders."""
        for folder in (self.data_dir, self.blob_dir, self.model_dir, self.work_dir):
            folder.mkdir(parents=True, exist_ok=True)


def physical_memory() -> int:
    """This machine's memory in bytes (8 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


@functools.cache
def get_settings() -> Settings:
    """The process's settings (read once)."""
    return Settings()
