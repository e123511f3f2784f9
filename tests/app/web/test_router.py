"""The web router over HTTP: the page's files, nothing outside them, and the series image endpoint."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lrc.io import read_nifti
from tests.service.harness import Service


@pytest.fixture(scope="module")
def ct_series(service: Service, shared_data: Path) -> dict[str, object]:
    """The small real CT NIfTI, uploaded once."""
    path = shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct_sm.nii.gz"
    with service.client("submitter") as client, path.open("rb") as handle:
        answer = client.post("/v1/studies", files={"files": (path.name, handle, "application/gzip")})
    assert answer.status_code in (200, 201), answer.text
    series: dict[str, object] = answer.json()["series"][0]
    return series


def test_root_sends_browsers_to_the_page(service: Service) -> None:
    with service.client("none") as client:
        answer = client.get("/", follow_redirects=True)
    assert answer.status_code == 200
    assert str(answer.url).endswith("/ui/")
    assert "<title>LRC segmentation</title>" in answer.text


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/ui/js/app.js", "text/javascript"), ("/ui/style.css", "text/css"), ("/ui/index.html", "text/html")],
)
def test_page_files(service: Service, path: str, media_type: str) -> None:
    with service.client("none") as client:
        answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media_type)


@pytest.mark.parametrize("path", ["/ui/nothing.js", "/ui/%2e%2e/router.py", "/ui/..%2F..%2Fmain.py", "/ui/js"])
def test_nothing_else_is_served(service: Service, path: str) -> None:
    with service.client("none") as client:
        answer = client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_series_image_needs_a_key(service: Service, ct_series: dict[str, object]) -> None:
    with service.client("none") as client:
        answer = client.get(f"/ui/api/series/{ct_series['id']}/image")
    assert answer.status_code == 401


def test_series_image_unknown_series(service: Service) -> None:
    with service.client("viewer") as client:
        answer = client.get("/ui/api/series/no-such-series/image")
    assert answer.status_code == 404


def test_series_image_is_the_volume_as_read(
    service: Service, ct_series: dict[str, object], shared_data: Path, tmp_path: Path
) -> None:
    with service.client("viewer") as client:
        answer = client.get(f"/ui/api/series/{ct_series['id']}/image")
    assert answer.status_code == 200
    path = tmp_path / "image.nii"
    path.write_bytes(answer.content)
    image = nib.load(path)
    expected = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct_sm.nii.gz")
    assert list(image.shape) == ct_series["shape"]
    assert image.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(image.dataobj), expected.array)
    np.testing.assert_allclose(image.affine, expected.affine, atol=1e-4)
    # Removed by a background task once the body is sent: the client may see the body a moment before.
    deadline = time.monotonic() + 10
    while list(service.settings.work_dir.glob("ui-image-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(service.settings.work_dir.glob("ui-image-*")), "the temporary folder was not removed"
