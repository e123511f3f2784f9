"""Fixtures of the runner tests: a service context (SQLite, a blob folder) with the tiny model in production."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services.model_versions import register_directory
from core.context import Context, build_context
from core.records.projects import DEFAULT
from core.settings import Settings
from tests.service.fixtures import MODEL
from tests.service.harness import FAST


@pytest.fixture
def ctx(tmp_path: Path, tiny_model: Path) -> Iterator[Context]:
    """A context of its own, the tiny model registered as ``MODEL`` version 1, in production."""
    context = build_context(Settings(data_dir=tmp_path / "data", **FAST))
    register_directory(context, MODEL, tiny_model, DEFAULT, status="production")
    try:
        yield context
    finally:
        context.db.engine.dispose()
