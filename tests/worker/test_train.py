"""worker/runners/train.py: a training job writes its model only inside the model folder of its project."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.records.projects import DEFAULT
from core.settings import Settings
from tests.service.harness import FAST
from worker.runners.train import model_folder


@pytest.mark.parametrize("name", ["../../escape", "..", "a/b", "ct:2", " liver", "liver\n", "x" * 129, ""])
def test_a_model_name_that_could_leave_the_model_folder_is_refused(tmp_path: Path, name: str):
    settings = Settings(data_dir=tmp_path / "data", **FAST)
    with pytest.raises(ValueError, match="model name"):
        model_folder(settings, DEFAULT, name, "job1")


def test_a_model_folder_is_in_the_projects_folder(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", **FAST)
    folder = model_folder(settings, DEFAULT, "Liver-CT.v2", "job1")
    assert folder == settings.model_dir / "projects" / DEFAULT / "Liver-CT.v2" / "job-job1"
