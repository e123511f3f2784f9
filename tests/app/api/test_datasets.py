"""``POST /v1/datasets`` all or nothing: a request that fails at a later case leaves no blob and no row,
and keeps the blobs that other records share; on SQLite and PostgreSQL, the API served over HTTP."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from core.records.tables import Base, Dataset, Series
from core.settings import Settings
from lrc.io import Volume, read_nifti, write_nifti
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service
from tests.service.helpers import multipart, series_with_uids, zip_bytes
from tests.service.postgres import database_url

PROBLEM = "application/problem+json"
LABELS = json.dumps({"5": "liver", "1": "spleen"})
_WINDOWS = itertools.count(1)  # first slices of the cases made by new_case


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The API on each database; no worker (a dataset needs none)."""
    root = tmp_path_factory.mktemp(f"datasets-{request.param}")
    with database_url(request.param) as url:
        options: dict[str, Any] = {"database_url": url} if url else {}
        settings = Settings(data_dir=root / "data", bootstrap_admin_key=ADMIN_KEY, **FAST, **options)
        with running_service(settings, (), root) as service:
            assert service.ctx.db.engine.dialect.name == request.param
            yield service


@pytest.fixture(scope="module")
def first_dataset(api: Service, ct_nifti: tuple[Path, Path]) -> dict[str, Any]:
    """A dataset stored before the failing requests: the small CT and its label map."""
    image, label = ct_nifti
    cases = [{"image": image.name, "label": label.name}]
    with api.client("submitter") as client:
        response = client.post(
            "/v1/datasets",
            data={"name": "first", "labels": LABELS, "cases": json.dumps(cases)},
            files=multipart([image, label]),
        )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def new_case(ct_nifti: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A case no request stored yet (another window of slices of the small CT and its label map each time)."""
    start = next(_WINDOWS)
    paths = []
    for source, name in zip(ct_nifti, ("ct_part.nii.gz", "seg_part.nii.gz"), strict=True):
        volume = read_nifti(source)
        shift = np.eye(4)
        shift[2, 3] = start
        part = Volume(volume.array[:, :, start : start + 20].copy(), volume.affine @ shift)
        paths.append(write_nifti(part, tmp_path / name))
    return paths[0], paths[1]


@pytest.fixture
def dicom_zip(shared_data: Path, tmp_path: Path) -> Path:
    """A zipped DICOM series (several blobs once stored) that no request stored yet (new UIDs each time)."""
    path = tmp_path / "series.zip"
    path.write_bytes(zip_bytes(series_with_uids(shared_data, tmp_path / "series", count=4)))
    return path


def _files(api: Service) -> set[str]:
    """Every file under the data folder but the SQLite databases (their journals come and go)."""
    root = api.settings.data_dir
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".sqlite" not in p.name}


def _rows(api: Service) -> dict[str, int]:
    with api.ctx.db.session() as session:
        return {
            t.name: int(session.scalar(select(func.count()).select_from(t)) or 0) for t in Base.metadata.tables.values()
        }


@pytest.mark.parametrize(
    ("bad_label", "needle"),
    [
        ("example_seg_fast_force_split.nii.gz", "(122, 101, 112)"),  # the big CT's label map: another grid
        ("PROVENANCE.md", "PROVENANCE.md"),  # not an image at all
    ],
)
def test_a_failing_case_leaves_nothing_behind_and_keeps_shared_blobs(
    api: Service,
    first_dataset: dict[str, Any],
    ct_nifti: tuple[Path, Path],
    new_case: tuple[Path, Path],
    dicom_zip: Path,
    shared_data: Path,
    bad_label: str,
    needle: str,
):
    """Case 0 is new, case 1 repeats the first dataset's image and label files (stored already: they must
    stay), case 2 brings a new DICOM series and a label map that does not fit it."""
    bad = next(shared_data.rglob(bad_label))
    files_before, rows_before = _files(api), _rows(api)
    cases = [
        {"image": new_case[0].name, "label": new_case[1].name},
        {"image": ct_nifti[0].name, "label": ct_nifti[1].name},
        {"image": dicom_zip.name, "label": bad.name},
    ]
    with api.client("submitter") as client:
        response = client.post(
            "/v1/datasets",
            data={"name": "broken", "labels": LABELS, "cases": json.dumps(cases)},
            files=multipart([*new_case, *ct_nifti, dicom_zip, bad]),
        )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "case 2" in response.json()["detail"]
    assert needle in response.json()["detail"]
    assert _files(api) == files_before
    assert _rows(api) == rows_before
    _assert_still_usable(api, first_dataset)


def test_an_unknown_file_in_a_later_case_leaves_nothing_behind(api: Service, new_case: tuple[Path, Path]):
    files_before, rows_before = _files(api), _rows(api)
    cases = [{"image": new_case[0].name, "label": new_case[1].name}, {"image": "missing.nii.gz", "label": "x"}]
    with api.client("submitter") as client:
        response = client.post(
            "/v1/datasets",
            data={"name": "missing", "labels": LABELS, "cases": json.dumps(cases)},
            files=multipart(list(new_case)),
        )
    assert response.status_code == 422, response.text
    assert "missing.nii.gz" in response.json()["detail"]
    assert (_files(api), _rows(api)) == (files_before, rows_before)


def test_the_same_cases_without_the_bad_one_are_stored(
    api: Service, first_dataset: dict[str, Any], ct_nifti: tuple[Path, Path], new_case: tuple[Path, Path]
):
    """After the failures a dataset still shares the first dataset's series and label, and stores a new image
    sent for two cases once."""
    cases = [
        {"image": new_case[0].name, "label": new_case[1].name},
        {"image": ct_nifti[0].name, "label": ct_nifti[1].name},
        {"image": new_case[0].name, "label": new_case[1].name},  # the same new image twice: one study
    ]
    with api.client("submitter") as client:
        response = client.post(
            "/v1/datasets",
            data={"name": "fixed", "labels": LABELS, "cases": json.dumps(cases)},
            files=multipart([*new_case, *ct_nifti]),
        )
    assert response.status_code == 201, response.text
    stored = [c["series_id"] for c in response.json()["cases"]]
    assert stored[1] == first_dataset["cases"][0]["series_id"]
    assert stored[0] == stored[2] != stored[1]
    _assert_still_usable(api, response.json())
    _assert_still_usable(api, first_dataset)


def _assert_still_usable(api: Service, dataset: dict[str, Any]) -> None:
    """Every blob of the dataset's series and label maps is on disk."""
    with api.ctx.db.session() as session:
        record = session.get(Dataset, dataset["id"])
        assert record is not None
        for case in record.cases:
            series = session.get(Series, case.series_id)
            assert series is not None
            for sha in [case.label_sha256, *(f["sha256"] for f in series.files)]:
                assert api.ctx.store.exists(sha), f"blob {sha} of dataset {dataset['name']} is gone"
    with api.client("viewer") as client:
        assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def test_datasets_are_listed_newest_first(api: Service, first_dataset: dict[str, Any], new_case: tuple[Path, Path]):
    cases = [{"image": new_case[0].name, "label": new_case[1].name}]
    with api.client("submitter") as client:
        form = {"name": "second", "labels": LABELS, "cases": json.dumps(cases)}
        response = client.post("/v1/datasets", data=form, files=multipart(list(new_case)))
        assert response.status_code == 201, response.text
        made = [first_dataset["id"], response.json()["id"]]
        listed = [d["id"] for d in client.get("/v1/datasets").json()]
        assert [i for i in listed if i in made] == made[::-1]
        assert [d["id"] for d in client.get("/v1/datasets", params={"limit": 1}).json()] == listed[:1]
        assert client.get("/v1/datasets", params={"limit": 0}).status_code == 422
