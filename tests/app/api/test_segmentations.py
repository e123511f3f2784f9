"""Segment through the API with a real worker; download NIfTI, DICOM SEG and RTSTRUCT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose

from app.services.model_versions import register_directory
from core.records.projects import DEFAULT
from lrc.io import read_nifti, read_volume
from lrc.io.seg import read_seg
from tests.io.test_seg import dciodvfy_errors
from tests.service.fixtures import MODEL, train_tiny
from tests.service.harness import Service
from tests.service.helpers import multipart, series_with_uids

PROBLEM = "application/problem+json"
DOWNLOADS = {  # format: the Content-Type and the file name of a downloaded result
    "nifti": ("application/gzip", "segmentation.nii.gz"),
    "dicom-seg": ("application/dicom", "segmentation.dcm"),
    "rtstruct": ("application/dicom", "rtstruct.dcm"),
}


def _upload(service: Service, paths: list[Path]) -> str:
    with service.client("submitter") as client:
        response = client.post("/v1/studies", files=multipart(paths))
    assert response.status_code in (200, 201), response.text
    return response.json()["series"][0]["id"]


def _result(service: Service, segmentation_id: str, fmt: str, timeout: float = 60) -> bytes:
    import time

    deadline = time.monotonic() + timeout
    with service.client("viewer") as client:
        while True:
            response = client.get(f"/v1/segmentations/{segmentation_id}/result", params={"format": fmt})
            if response.status_code != 409 or time.monotonic() > deadline:
                break
            assert response.headers["content-type"] == PROBLEM
            time.sleep(0.3)
    assert response.status_code == 200, response.text
    media_type, filename = DOWNLOADS[fmt]
    assert response.headers["content-type"] == media_type
    assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    return response.content


def test_segment_dicom_series_get_nifti_seg_rtstruct(service: Service, shared_data: Path, tmp_path: Path):
    paths = series_with_uids(shared_data, tmp_path / "series")
    series_id = _upload(service, paths)
    with service.client("submitter") as client:
        response = client.post("/v1/segmentations", json={"series_id": series_id, "model": f"{MODEL}:1"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    job = service.wait_job(accepted["job_id"])
    assert job["state"] == "succeeded", job
    assert job["links"]["nifti"].endswith("format=nifti")
    assert set(job["result"]["voxels"]) == {"liver", "spleen"}

    image = read_volume(paths)
    nifti = tmp_path / "labels.nii.gz"
    nifti.write_bytes(_result(service, accepted["id"], "nifti"))
    labels = read_nifti(nifti)
    assert labels.shape == image.shape
    assert_allclose(labels.affine, image.affine, atol=1e-4)
    assert set(np.unique(labels.array)) <= {0, 1, 5}

    seg_path = tmp_path / "seg.dcm"
    seg_path.write_bytes(_result(service, accepted["id"], "dicom-seg"))
    assert dciodvfy_errors(seg_path) == []  # valid per dicom3tools
    masks = read_seg(seg_path, image)  # highdicom parses it and maps its frames onto the source slices
    back = masks.label_map()
    names = [masks.table[v].name for v in masks.table]
    assert sorted(names) == ["liver", "spleen"]  # a segment for each label of the model, empty or not
    for value in masks.table:  # the SEG holds the same voxels as the NIfTI, label by label
        name = masks.table[value].name
        original = {"liver": 5, "spleen": 1}[name]
        assert np.array_equal(back.array == value, labels.array == original)

    rt_path = tmp_path / "rt.dcm"
    rt_path.write_bytes(_result(service, accepted["id"], "rtstruct"))
    assert pydicom.dcmread(rt_path).Modality == "RTSTRUCT"
    assert dciodvfy_errors(rt_path) == []

    with service.client("viewer") as client:
        view = client.get(f"/v1/segmentations/{accepted['id']}").json()
    assert view["formats"] == ["dicom-seg", "nifti", "rtstruct"]
    assert view["model"] == {"name": MODEL, "version": 1}


def test_segment_nifti_with_production_model(service: Service, ct_nifti: tuple[Path, Path], tmp_path: Path):
    series_id = _upload(service, [ct_nifti[0]])
    with service.client("submitter") as client:
        accepted = client.post("/v1/segmentations", json={"series_id": series_id}).json()
    job = service.wait_job(accepted["job_id"])
    assert job["state"] == "succeeded", job
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(_result(service, accepted["id"], "nifti"))
    assert read_nifti(out).shape == (122, 101, 30)
    with service.client("viewer") as client:
        refused = client.get(f"/v1/segmentations/{accepted['id']}/result", params={"format": "dicom-seg"})
    assert refused.status_code == 422
    assert "format=nifti" in refused.json()["detail"]


def test_segment_by_tiles_of_the_training_patch(service: Service, ct_nifti: tuple[Path, Path], tmp_path: Path):
    """``tiles``: the worker's cached model runs over 48-pixel tiles (its training patch) of the 64-pixel slices
    when asked (true) or, unasked (null), when its card says so; false: whole slices."""
    tiled = "ct-tiled"  # the same training (same weights) as MODEL, its card saying tiles
    register_directory(service.ctx, tiled, train_tiny(ct_nifti, tmp_path / "tiled", tile="patch"), DEFAULT)
    series_id = _upload(service, [ct_nifti[0]])
    asked = [(MODEL, False), (MODEL, True), (MODEL, None), (tiled, None), (tiled, False)]
    arrays, views = [], []
    for model, tiles in asked:
        with service.client("submitter") as client:
            accepted = client.post(
                "/v1/segmentations", json={"series_id": series_id, "model": f"{model}:1", "tiles": tiles}
            ).json()
        assert service.wait_job(accepted["job_id"])["state"] == "succeeded"
        out = tmp_path / f"{model}-{tiles}.nii.gz"
        out.write_bytes(_result(service, accepted["id"], "nifti"))
        arrays.append(read_nifti(out).array)
        with service.client("viewer") as client:
            views.append(client.get(f"/v1/segmentations/{accepted['id']}").json())
    shown = [(v["tiles"], v["tile"]) for v in views]
    assert shown == [(False, None), (True, 48), (None, None), (None, 48), (False, None)]
    assert all(a.shape == (122, 101, 30) for a in arrays)
    whole, tiles = arrays[0], arrays[1]
    assert not np.array_equal(tiles, whole)
    for array, expected in zip(arrays[2:], (whole, tiles, whole), strict=True):
        np.testing.assert_array_equal(array, expected)
    with service.client("submitter") as client:
        refused = client.post("/v1/segmentations", json={"series_id": series_id, "tiles": "yes please"})
    assert refused.status_code == 422
    # A card without a training patch (made elsewhere) has no tiles: refused at the request, no job made.
    patchless = tmp_path / "patchless"
    shutil.copytree(train_tiny(ct_nifti, tmp_path / "plain"), patchless)
    card = json.loads((patchless / "model.json").read_text())
    del card["training"]["patch"]
    (patchless / "model.json").write_text(json.dumps(card))
    register_directory(service.ctx, "ct-patchless", patchless, DEFAULT)
    with service.client("submitter") as client:
        jobs = len(client.get("/v1/jobs", params={"limit": 500}).json())
        body = {"series_id": series_id, "model": "ct-patchless:1"}
        refused = client.post("/v1/segmentations", json=body | {"tiles": True})
        assert refused.status_code == 422
        assert "records no training patch" in refused.json()["detail"]
        assert len(client.get("/v1/jobs", params={"limit": 500}).json()) == jobs
        assert client.post("/v1/segmentations", json=body).status_code == 202  # whole slices: fine


def test_job_events_stream(service: Service, ct_nifti: tuple[Path, Path]):
    series_id = _upload(service, [ct_nifti[0]])
    with service.client("submitter") as client:
        accepted = client.post("/v1/segmentations", json={"series_id": series_id}).json()
        events = []
        with client.stream("GET", f"/v1/jobs/{accepted['job_id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
    assert events[-1]["state"] == "succeeded"
    assert all(e["id"] == accepted["job_id"] for e in events)


def test_job_list(service: Service, ct_nifti: tuple[Path, Path]):
    series_id = _upload(service, [ct_nifti[0]])
    with service.client("submitter") as client:
        accepted = client.post("/v1/segmentations", json={"series_id": series_id}).json()
    service.wait_job(accepted["job_id"])
    with service.client("viewer") as client:
        listed = client.get("/v1/jobs", params={"kind": "segment", "limit": 500}).json()
        assert accepted["job_id"] in [job["id"] for job in listed]
        assert all(job["kind"] == "segment" for job in listed)
        created = [job["created_at"] for job in listed]
        assert created == sorted(created, reverse=True)  # newest first
        assert client.get("/v1/jobs", params={"state": "running", "kind": "pretrain"}).json() == []
        refused = client.get("/v1/jobs", params={"state": "lost"})
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"series_id": "nope"}, 404),
        ({"series_id": "nope", "model": "no-such-model"}, 404),
        ({"model": MODEL}, 422),
    ],
)
def test_bad_segmentation_requests(service: Service, body, status):
    with service.client("submitter") as client:
        response = client.post("/v1/segmentations", json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM


def test_unknown_segmentation_result(service: Service):
    with service.client("viewer") as client:
        response = client.get("/v1/segmentations/nope/result")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


def test_unknown_result_format_is_refused_with_the_formats_there_are(service: Service):
    with service.client("viewer") as client:
        response = client.get("/v1/segmentations/nope/result", params={"format": "nrrd"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == "query.format: String should match pattern '^(nifti|dicom-seg|rtstruct)$'"
