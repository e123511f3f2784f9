"""What one upload costs the API process: a 2 MB ``.nii.gz`` inflating to 1024 x 1024 x 1000 int16 (2 GB of
voxels, within the voxel limit) is answered, and the API's resident memory stays within the bound of
``app/README.md`` above what it held before, while the image is checked; so does a dataset of that image and a
1 MB label map inflating to 1024 x 1024 x 1000 uint8. ``bench/api_memory.py`` measures more inputs; these are
the bound on the worst of them a test can afford."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.reliability.large_inputs import label_map, nifti, post_dataset
from tests.reliability.processes import Memory, watch_memory
from tests.service.harness import ADMIN_KEY, FAST, api_process, service_env

BOUND = 512 * 1024**2  # bytes an upload may add to the API's resident memory (app/README.md)
MIB = 1024**2


@pytest.fixture(scope="module")
def inflating(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2 MB gzip of 2 GB of int16 zeros, 1 mm voxels (about 4 s to write)."""
    return nifti(tmp_path_factory.mktemp("inflating") / "zeros.nii.gz", (1024, 1024, 1000), "int16")


@pytest.fixture(scope="module")
def inflating_label(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 1 MB gzip of a 1024 x 1024 x 1000 uint8 label map, every voxel 1 (about 2 s to write)."""
    return label_map(tmp_path_factory.mktemp("inflating") / "ones.nii.gz", (1024, 1024, 1000))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """The API alone on a fresh data folder, warmed by one small study upload (the first upload's imports and
    caches are the API's, not the image's)."""
    settings = Settings(data_dir=tmp_path / "data", bootstrap_admin_key=ADMIN_KEY, **FAST)
    env = service_env(settings)
    env.update(LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, LRC_STARTER_MODEL_DIR=str(FAST["starter_model_dir"]))
    small = nifti(tmp_path / "small.nii.gz", (16, 16, 4), "int16")
    with api_process(env, tmp_path / "api.log") as (process, client):
        assert client.post("/v1/studies", files=[("files", (small.name, small.read_bytes()))]).status_code == 201
        yield process, client


def test_an_inflating_nifti_is_answered_within_the_memory_bound(
    inflating: Path, api: tuple[subprocess.Popen[bytes], httpx.Client]
):
    assert inflating.stat().st_size < 3 * MIB
    process, client = api
    with inflating.open("rb") as body, watch_memory(process.pid) as memory:
        response = client.post("/v1/studies", files=[("files", (inflating.name, body))], timeout=120)
    _assert_answered_within_bound(response, memory, inflating.name)


def test_a_dataset_of_inflating_niftis_is_answered_within_the_memory_bound(
    inflating: Path, inflating_label: Path, api: tuple[subprocess.Popen[bytes], httpx.Client]
):
    assert inflating_label.stat().st_size < 3 * MIB
    process, client = api
    with watch_memory(process.pid) as memory:
        response = post_dataset(client, inflating, inflating_label, timeout=120)
    assert response.status_code == 201, response.text[:300]  # checked whole, the label map is a good one
    _assert_answered_within_bound(response, memory, f"{inflating.name} with {inflating_label.name}")


def _assert_answered_within_bound(response: httpx.Response, memory: Memory, what: str) -> None:
    answered = response.status_code in (200, 201) or (
        400 <= response.status_code < 500 and response.headers["content-type"] == "application/problem+json"
    )
    assert answered, f"{response.status_code}: {response.text[:300]}"
    assert memory.growth < BOUND, (
        f"the API grew by {memory.growth / MIB:.0f} MiB (from {memory.before / MIB:.0f} MiB) checking "
        f"{what}; the bound is {BOUND / MIB:.0f} MiB"
    )
