"""Shared fixtures: the real imaging data beside the repository, a DICOM series factory, and (from
:mod:`tests.service.fixtures`) a running embedded service with a tiny model."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import dicom_factory

ROOT = Path(__file__).resolve().parents[1]
# The running service and the tiny model it serves, for every folder that tests the service.
pytest_plugins = ["tests.service.fixtures"]


def _shared_data() -> Path:
    configured = os.environ.get("LRC_SHARED_DATA")
    path = Path(configured) if configured else ROOT.parent / "shared" / "data"
    if not (path / "PROVENANCE.md").is_file():
        raise RuntimeError(f"real test data not found at {path}: set LRC_SHARED_DATA to the shared/data folder")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``shared/data`` (see its PROVENANCE.md)."""
    return _shared_data()


@pytest.fixture
def make_series(shared_data: Path, tmp_path: Path) -> Callable[..., list[Path]]:
    """Write a DICOM series built from a real CT slice: ``make_series(positions, folder=..., **options)``."""

    def make(positions: Any, folder: str = "series", **options: Any) -> list[Path]:
        return dicom_factory.write_series(shared_data, tmp_path / folder, positions, **options)

    return make
