"""Fixtures of the service tests (a plugin of ``tests/conftest.py``, for every test folder): a tiny model
trained on real CT, and a running embedded service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services.model_versions import register_directory
from core.records.projects import DEFAULT
from core.settings import Settings
from lrc.io import read_nifti
from lrc.io.labels import LabelTable
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service

SMALL = (8, 8, 16, 16, 32, 8)


def pytest_configure(config: pytest.Config) -> None:
    """kombu 5.7's SQLAlchemy transport (the embedded broker) declares ``lazy="noload"`` relations
    (kombu/transport/sqlalchemy/models.py), which SQLAlchemy 2.1 deprecates; not ours to fix."""
    config.addinivalue_line(
        "filterwarnings", "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    )


LABELS = {5: "liver", 1: "spleen"}
MODEL = "ct-test"


@pytest.fixture(scope="session")
def ct_nifti(shared_data: Path) -> tuple[Path, Path]:
    """TotalSegmentator's small abdominal CT (122x101x30, 3 mm) and its label map."""
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    return folder / "example_ct_sm.nii.gz", folder / "example_seg.nii.gz"


def train_tiny(ct_nifti: tuple[Path, Path], out: Path, tile: str | None = None) -> Path:
    """A 2D segmentation model trained for 3 steps on the real CT (seconds on a CPU), 48-pixel patches
    of 64-pixel slices; ``tile``: how its card says it predicts (``FinetuneConfig.tile``)."""
    from lrc.train.finetune import finetune
    from lrc.train.finetune_config import FinetuneConfig

    case = (read_nifti(ct_nifti[0], modality="CT"), read_nifti(ct_nifti[1]))
    config = FinetuneConfig(
        steps=3, batch_size=2, patch=48, spacing=6.0, canvas=64, features=SMALL, validate_every=100, tile=tile
    )
    return finetune([case], LabelTable.from_names(LABELS), out, config, validation=[], device="cpu")


@pytest.fixture(scope="session")
def tiny_model(ct_nifti: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`train_tiny`, whole slices by default (as from scratch)."""
    return train_tiny(ct_nifti, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def service(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Embedded mode: SQLite records, local blobs, the SQLite Celery transport, two real worker processes."""
    root = tmp_path_factory.mktemp("service")
    settings = Settings(data_dir=root / "data", bootstrap_admin_key=ADMIN_KEY, max_upload_bytes=8 * 1024**2, **FAST)
    with running_service(settings, (("infer", "infer,io"), ("train", "train")), root) as running:
        register_directory(running.ctx, MODEL, tiny_model, DEFAULT, status="production")
        yield running
