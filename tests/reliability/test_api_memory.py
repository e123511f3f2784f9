"""What one upload costs the API process: a 2 MB ``.nii.gz`` inflating to 1024 x 1024 x 1000 int16 (2 GB of
voxels, within the voxel limit) is answered, and the API's resident memory stays within the bound of
``app/README.md`` above what it held before, while the image is checked. ``bench/api_memory.py`` measures more
inputs; this is the bound on the worst one of them a test can afford."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from tests.reliability.large_inputs import nifti
from tests.reliability.processes import watch_memory
from tests.service.harness import ADMIN_KEY, FAST, api_process, service_env

BOUND = 512 * 1024**2  # bytes an upload may add to the API's resident memory (app/README.md)
MIB = 1024**2


@pytest.fixture(scope="module")
def inflating(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2 MB gzip of 2 GB of int16 zeros, 1 mm voxels (about 4 s to write)."""
    return nifti(tmp_path_factory.mktemp("inflating") / "zeros.nii.gz", (1024, 1024, 1000), "int16")


def test_an_inflating_nifti_is_answered_within_the_memory_bound(inflating: Path, tmp_path: Path):
    assert inflating.stat().st_size < 3 * MIB
    settings = Settings(data_dir=tmp_path / "data", bootstrap_admin_key=ADMIN_KEY, **FAST)
    env = service_env(settings)
    env.update(LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, LRC_STARTER_MODEL_DIR=str(FAST["starter_model_dir"]))
    small = nifti(tmp_path / "small.nii.gz", (16, 16, 4), "int16")
    with api_process(env, tmp_path / "api.log") as (process, client):
        # Once before: the first upload's imports and caches are the API's, not the image's.
        assert client.post("/v1/studies", files=[("files", (small.name, small.read_bytes()))]).status_code == 201
        with inflating.open("rb") as body, watch_memory(process.pid) as memory:
            response = client.post("/v1/studies", files=[("files", (inflating.name, body))], timeout=120)
    answered = response.status_code in (200, 201) or (
        400 <= response.status_code < 500 and response.headers["content-type"] == "application/problem+json"
    )
    assert answered, f"{response.status_code}: {response.text[:300]}"
    assert memory.growth < BOUND, (
        f"the API grew by {memory.growth / MIB:.0f} MiB (from {memory.before / MIB:.0f} MiB) checking "
        f"{inflating.name}; the bound is {BOUND / MIB:.0f} MiB"
    )
