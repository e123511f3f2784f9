"""``/v1/studies``: uploads of DICOM zips, files and NIfTI; bad uploads as problem+json."""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from pathlib import Path

import pytest

from tests.service.harness import Service
from tests.service.helpers import ct_series, multipart, series_with_uids, zip_bytes

PROBLEM = "application/problem+json"


def test_upload_dicom_zip_dedup_list_get(service: Service, shared_data: Path):
    body = zip_bytes(ct_series(shared_data))
    with service.client("submitter") as client:
        first = client.post("/v1/studies", files=[("files", ("ct.zip", body, "application/zip"))])
        assert first.status_code == 201, first.text
        study = first.json()
        (series,) = study["series"]
        assert series["modality"] == "CT"
        assert series["shape"] == [512, 512, 20]
        assert series["spacing"] == pytest.approx([0.9765625, 0.9765625, 2.0], abs=1e-5)
        assert series["dicom"] is True
        blobs = sorted(p.name for p in service.settings.blob_dir.glob("??/*"))
        again = client.post("/v1/studies", files=[("files", ("same.zip", body, "application/zip"))])
        assert again.status_code == 200
        assert again.json()["id"] == study["id"]
        assert again.json()["duplicate"] is True
        assert sorted(p.name for p in service.settings.blob_dir.glob("??/*")) == blobs  # stored once
        assert client.get(f"/v1/studies/{study['id']}").json()["series"][0]["id"] == series["id"]
        assert study["id"] in [s["id"] for s in client.get("/v1/studies").json()]


def test_upload_dicom_files_and_delete(service: Service, shared_data: Path, tmp_path: Path):
    paths = series_with_uids(shared_data, tmp_path / "s", count=6)
    with service.client("submitter") as client:
        response = client.post("/v1/studies", files=multipart(paths))
        assert response.status_code == 201, response.text
        study = response.json()
        (series,) = study["series"]
        assert series["shape"] == [64, 64, 6]
        assert series["exportable"] is True
        blobs = [service.ctx.store.path(hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]
        assert all(b.is_file() for b in blobs)
        assert client.delete(f"/v1/studies/{study['id']}").status_code == 204
        assert not any(b.exists() for b in blobs)  # nothing else used them
        gone = client.get(f"/v1/studies/{study['id']}")
        assert gone.status_code == 404
        assert gone.headers["content-type"] == PROBLEM


def test_upload_nifti(service: Service, ct_nifti: tuple[Path, Path]):
    with service.client("submitter") as client:
        response = client.post("/v1/studies", files=multipart([ct_nifti[0]]))
    assert response.status_code in (200, 201), response.text  # 200: another test uploaded it first
    (series,) = response.json()["series"]
    assert series["description"] == ct_nifti[0].name
    assert series["shape"] == [122, 101, 30]
    assert series["spacing"] == pytest.approx([3.0, 3.0, 3.0])
    assert series["modality"] == "CT"
    assert series["dicom"] is False


def _traversal_zip(shared_data: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(ct_series(shared_data)[0], "../../escape.dcm")
    return buffer.getvalue()


def _corrupt_dicom(shared_data: Path) -> bytes:
    data = ct_series(shared_data)[0].read_bytes()
    return data[: len(data) // 2]  # a real DICOM file cut short, in its pixel data


@pytest.mark.parametrize(
    ("name", "make", "status", "kind"),
    [
        ("cut.dcm", _corrupt_dicom, 422, ("invalid-dicom", "no-image-data")),
        ("notes.txt", lambda _: b"Patient: nobody. This is not an image.\n" * 50, 422, None),
        ("evil.zip", _traversal_zip, 400, ("unsafe-archive",)),
        ("broken.nii.gz", lambda _: b"\x1f\x8b\x08\x00garbage" * 10, 422, ("unsupported-input",)),
    ],
)
def test_bad_uploads_are_problems(service: Service, shared_data: Path, name, make, status, kind):
    with service.client("submitter") as client:
        response = client.post("/v1/studies", files=[("files", (name, make(shared_data), "application/octet-stream"))])
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert problem["detail"]
    if kind:
        assert problem["type"].rsplit(":", 1)[-1] in kind


def test_wrong_content_type(service: Service):
    with service.client("submitter") as client:
        response = client.post("/v1/studies", json={"files": ["x"]})
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert "multipart/form-data" in response.json()["detail"]


def test_oversized_upload_is_refused(service: Service):
    limit = service.settings.max_upload_bytes
    with service.client("submitter") as client:
        declared = client.post("/v1/studies", files=[("files", ("big.dcm", b"\0" * (limit + 1), "application/dicom"))])
        assert declared.status_code == 413
        assert declared.headers["content-type"] == PROBLEM

        def chunks():  # no Content-Length: the limit is enforced on the stream
            boundary = b"--b\r\n"
            yield boundary + b'Content-Disposition: form-data; name="files"; filename="big.dcm"\r\n\r\n'
            for _ in range(limit // (1 << 20) + 2):
                yield b"\0" * (1 << 20)
            yield b"\r\n--b--\r\n"

        streamed = client.post(
            "/v1/studies", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
    assert streamed.status_code == 413
    assert "LRC_MAX_UPLOAD_BYTES" in streamed.json()["detail"]


def test_no_files(service: Service):
    with service.client("submitter") as client:
        response = client.post("/v1/studies", files=[("other", ("x.txt", b"x", "text/plain"))])
    assert response.status_code == 422
    assert "'files'" in response.json()["detail"]


def test_images_over_the_voxel_limit_are_refused_before_decoding(
    service: Service, shared_data: Path, ct_nifti: tuple[Path, Path], tmp_path: Path
):
    """``LRC_MAX_VOXELS`` bounds each uploaded image (DICOM through the API; NIfTI through the same reader)."""
    from app.services.studies import read_upload
    from lrc.io import UnsupportedInput

    paths = series_with_uids(shared_data, tmp_path / "s", count=6)  # 64 x 64 x 6 = 24576 voxels, never uploaded
    default = service.ctx.settings.max_voxels
    service.ctx.settings.max_voxels = 24575
    try:
        with service.client("submitter") as client:
            refused = client.post("/v1/studies", files=multipart(paths))
    finally:
        service.ctx.settings.max_voxels = default
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM
    assert "24576 voxels, over the reader's limit of 24575" in refused.json()["detail"]
    with service.client("submitter") as client:
        assert client.post("/v1/studies", files=multipart(paths)).status_code == 201  # nothing kept of the refusal

    limit = 1 << 30
    with pytest.raises(UnsupportedInput, match="over the reader's limit of 1000"):
        read_upload([ct_nifti[0]], tmp_path / "nifti", limit, max_voxels=1000)
    (volume, path), *_ = read_upload([ct_nifti[0]], tmp_path / "nifti-ok", limit)[0]
    assert path == ct_nifti[0]
    assert math.prod(volume.shape) > 1000  # read under the default limit


def test_a_study_says_what_people_recognise_it_by(service: Service, shared_data: Path):
    """dcmqi's 3 real CT slices: the study's date from its headers, its modality, series and slice counts."""
    files = sorted((shared_data / "dicom" / "seg_dcmqi" / "ct-3slice").glob("*.dcm"))
    with service.client("submitter") as client:
        response = client.post("/v1/studies", files=multipart(files))
        assert response.status_code in (200, 201), response.text
        listed = {s["id"]: s for s in client.get("/v1/studies").json()}[response.json()["id"]]
    assert (listed["study_date"], listed["modalities"], listed["slices"]) == ("2003-04-17", ["CT"], 3)
    assert listed["description"] == ""  # the headers have none
