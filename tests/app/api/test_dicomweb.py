"""QIDO-RS and WADO-RS of the produced DICOM SEG and RTSTRUCT, after upload -> segment -> export with a real worker."""

from __future__ import annotations

import dataclasses
import io
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from app.main import create_app
from core.settings import Settings
from tests.service.fixtures import MODEL
from tests.service.harness import Service, start_api
from tests.service.helpers import multipart, series_with_uids

DICOM_JSON = "application/dicom+json"
PROBLEM = "application/problem+json"
STUDY, SERIES, SOP, MODALITY = "0020000D", "0020000E", "00080018", "00080060"


def value(dataset: dict[str, Any], tag: str) -> Any:
    """The first value of ``tag`` in a DICOM JSON dataset."""
    return dataset[tag]["Value"][0]


def parts(response: httpx.Response) -> list[tuple[str, bytes]]:
    """(content type, body) of each part of a multipart/related answer (the standard library's MIME parser)."""
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + response.content)
    assert message.is_multipart()
    return [(p.get("content-type", ""), p.get_payload(decode=True)) for p in message.iter_parts()]


@pytest.fixture(scope="module")
def produced(service: Service, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A DICOM series uploaded, segmented and exported: its study id, a source file, its SEG and RTSTRUCT (bytes)."""
    paths = series_with_uids(shared_data, tmp_path_factory.mktemp("dicomweb-series"))
    with service.client("submitter") as client:
        upload = client.post("/v1/studies", files=multipart(paths))
        assert upload.status_code in (200, 201), upload.text
        series_id = upload.json()["series"][0]["id"]
        created = client.post("/v1/segmentations", json={"series_id": series_id, "model": f"{MODEL}:1"})
    assert created.status_code == 202, created.text
    assert service.wait_job(created.json()["job_id"])["state"] == "succeeded"
    with service.client("viewer") as client:
        export_job_id = client.get(f"/v1/segmentations/{created.json()['id']}").json()["export_job_id"]
    export = service.wait_job(export_job_id)
    assert export["state"] == "succeeded", export
    out: dict[str, Any] = {
        "study_id": upload.json()["id"],
        "segmentation_id": created.json()["id"],
        "source": paths[0].read_bytes(),
    }
    with service.client("viewer") as client:
        for fmt in ("dicom-seg", "rtstruct"):
            response = client.get(f"/v1/segmentations/{created.json()['id']}/result", params={"format": fmt})
            assert response.status_code == 200, response.text
            out[fmt] = response.content
    return out


def test_qido_finds_the_seg_by_study_series_and_modality(service: Service, produced: dict[str, Any]):
    seg = pydicom.dcmread(io.BytesIO(produced["dicom-seg"]))
    rt = pydicom.dcmread(io.BytesIO(produced["rtstruct"]))
    assert (
        seg.StudyInstanceUID == rt.StudyInstanceUID == pydicom.dcmread(io.BytesIO(produced["source"])).StudyInstanceUID
    )
    study = seg.StudyInstanceUID
    with service.client("viewer") as client:
        studies = client.get("/dicomweb/studies", params={"StudyInstanceUID": study})
        assert studies.status_code == 200, studies.text
        assert studies.headers["content-type"] == DICOM_JSON
        [found] = studies.json()
        assert value(found, STUDY) == study
        assert sorted(found["00080061"]["Value"]) == ["RTSTRUCT", "SEG"]  # ModalitiesInStudy
        assert value(found, "00201206") == 2
        assert value(found, "00201208") == 2
        assert value(found, "00100020") == seg.PatientID
        assert value(found, "00081190").endswith(f"/dicomweb/studies/{study}")

        by_tag = client.get("/dicomweb/studies", params={STUDY: study, MODALITY: "SEG"}).json()
        assert [value(s, STUDY) for s in by_tag] == [study]

        series = client.get(f"/dicomweb/studies/{study}/series", params={"Modality": "SEG"}).json()
        assert [(value(s, SERIES), value(s, MODALITY)) for s in series] == [(seg.SeriesInstanceUID, "SEG")]
        assert value(series[0], "00201209") == 1
        both = client.get(f"/dicomweb/studies/{study}/series").json()
        assert sorted(value(s, MODALITY) for s in both) == ["RTSTRUCT", "SEG"]
        everywhere = client.get("/dicomweb/series", params={"SeriesInstanceUID": rt.SeriesInstanceUID}).json()
        assert [value(s, MODALITY) for s in everywhere] == ["RTSTRUCT"]

        instances = client.get(f"/dicomweb/studies/{study}/series/{seg.SeriesInstanceUID}/instances").json()
        assert [value(i, SOP) for i in instances] == [seg.SOPInstanceUID]
        assert value(instances[0], "00080016") == seg.SOPClassUID
        by_sop = client.get("/dicomweb/instances", params={"SOPInstanceUID": f"{rt.SOPInstanceUID},1.2.3"}).json()
        assert [value(i, SOP) for i in by_sop] == [rt.SOPInstanceUID]

        nothing = client.get("/dicomweb/studies", params={"StudyInstanceUID": "1.2.3.4"})
        assert nothing.status_code == 200
        assert nothing.json() == []
        paged = client.get(f"/dicomweb/studies/{study}/series", params={"limit": 1, "offset": 1}).json()
        assert len(paged) == 1
        assert paged[0] in both
        ignored = client.get("/dicomweb/studies", params={"StudyInstanceUID": study, "PatientName": "DOE*"})
        assert ignored.status_code == 200
        assert "PatientName" in ignored.headers["warning"]
        bad = client.get("/dicomweb/studies", params={"limit": "-1"})
        assert bad.status_code == 400
        assert bad.headers["content-type"] == PROBLEM


def test_wado_returns_the_stored_instances(service: Service, produced: dict[str, Any]):
    seg = pydicom.dcmread(io.BytesIO(produced["dicom-seg"]))
    base = f"/dicomweb/studies/{seg.StudyInstanceUID}/series/{seg.SeriesInstanceUID}"
    accept = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    with service.client("viewer") as client:
        one = client.get(f"{base}/instances/{seg.SOPInstanceUID}", headers=accept)
        assert one.status_code == 200, one.text
        assert one.headers["content-type"].startswith('multipart/related; type="application/dicom"; boundary=')
        [(kind, body)] = parts(one)
        assert kind.startswith("application/dicom")
        assert body == produced["dicom-seg"]  # the instance as stored
        back = pydicom.dcmread(io.BytesIO(body))
        assert back.SOPInstanceUID == seg.SOPInstanceUID
        assert back.Modality == "SEG"

        series = client.get(base)  # no Accept: the default media type
        assert [body for _, body in parts(series)] == [produced["dicom-seg"]]
        study = client.get(f"/dicomweb/studies/{seg.StudyInstanceUID}")
        assert sorted(pydicom.dcmread(io.BytesIO(b)).Modality for _, b in parts(study)) == ["RTSTRUCT", "SEG"]

        metadata = client.get(f"{base}/instances/{seg.SOPInstanceUID}/metadata")
        assert metadata.status_code == 200
        assert metadata.headers["content-type"] == DICOM_JSON
        [header] = metadata.json()
        assert pydicom.Dataset.from_json(header).SOPInstanceUID == seg.SOPInstanceUID
        without_pixels = seg.copy()
        del without_pixels.PixelData
        assert header == without_pixels.to_json_dict()
        assert [value(h, SOP) for h in client.get(f"{base}/metadata").json()] == [seg.SOPInstanceUID]

        for unknown in (
            f"{base}/instances/1.2.3",
            f"{base[: base.index('/series')]}/series/1.2.3",
            "/dicomweb/studies/1.2.3",
        ):
            missing = client.get(unknown)
            assert missing.status_code == 404, unknown
            assert missing.headers["content-type"] == PROBLEM
        assert client.get(f"{base}/instances/1.2.3/metadata").status_code == 404
        refused = client.get(base, headers={"Accept": 'multipart/related; type="application/octet-stream"'})
        assert refused.status_code == 406
        assert refused.headers["content-type"] == PROBLEM


def _retrieve_urls(url: str, token: str, study: str, host: str) -> list[str]:
    """The RetrieveURL of every QIDO answer at the three levels, asked with ``host`` as the Host header."""
    found = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}", "Host": host}) as client:
        for path in ("/dicomweb/studies", f"/dicomweb/studies/{study}/series", f"/dicomweb/studies/{study}/instances"):
            answer = client.get(path, params={STUDY: study})
            assert answer.status_code == 200, answer.text
            found += [value(d, "00081190") for d in answer.json()]
    return found


def test_retrieve_urls_never_follow_the_host_header(service: Service, produced: dict[str, Any]):
    study = pydicom.dcmread(io.BytesIO(produced["dicom-seg"])).StudyInstanceUID
    urls = _retrieve_urls(service.url, service.tokens["viewer"], study, "evil.example.com")
    assert len(urls) >= 3
    assert all(u.startswith(f"{service.url}/dicomweb/studies/{study}") for u in urls), urls  # where it came in

    public = "https://lrc.hospital.example/segmentation"
    settings = Settings(**{**service.settings.model_dump(), "public_url": public + "/"})
    assert settings.public_url == public
    server, thread, url = start_api(create_app(context=dataclasses.replace(service.ctx, settings=settings)))
    try:
        urls = _retrieve_urls(url, service.tokens["viewer"], study, "evil.example.com")
    finally:
        server.should_exit = True
        thread.join(10)
    assert len(urls) >= 3
    assert all(u.startswith(f"{public}/dicomweb/studies/{study}") for u in urls), urls


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("lrc.hospital.example", "http(s) URL with a host"),
        ("ftp://lrc.hospital.example", "http(s) URL with a host"),
        ("https://", "http(s) URL with a host"),
        ("https://lrc.hospital.example/?next=evil", "no query"),
        ("https://user:pw@lrc.hospital.example", "no query, fragment or user name"),
        ("https://lrc.hospital.example:99999", "invalid port"),
    ],
)
def test_a_public_url_is_checked_at_start(value: str, problem: str, tmp_path: Path):
    with pytest.raises(ValueError, match="LRC_PUBLIC_URL") as raised:
        Settings(data_dir=tmp_path, public_url=value)
    assert problem in str(raised.value)


def test_dicomweb_retrieve_needs_a_key(service: Service, produced: dict[str, Any]):
    seg = pydicom.dcmread(io.BytesIO(produced["dicom-seg"]))
    with service.client("none") as client:
        for path in ("/dicomweb/studies", f"/dicomweb/studies/{seg.StudyInstanceUID}"):
            response = client.get(path)
            assert response.status_code == 401
            assert response.headers["content-type"] == PROBLEM


def test_exports_from_before_the_index_are_indexed_at_start(service: Service, produced: dict[str, Any]):
    from app.main import start
    from core.records.tables import ResultInstance

    seg = pydicom.dcmread(io.BytesIO(produced["dicom-seg"]))
    with service.ctx.db.session() as session:
        session.query(ResultInstance).filter_by(sop_instance_uid=seg.SOPInstanceUID).delete()
    with service.client("viewer") as client:
        assert client.get("/dicomweb/instances", params={"SOPInstanceUID": seg.SOPInstanceUID}).json() == []
        start(service.ctx)  # what the API does when it starts
        found = client.get("/dicomweb/instances", params={"SOPInstanceUID": seg.SOPInstanceUID}).json()
    assert [value(i, SOP) for i in found] == [seg.SOPInstanceUID]


def test_a_redelivered_export_writes_nothing_twice(service: Service, produced: dict[str, Any]):
    """Formats are recorded one by one; running the finished export job again adds no file or instance."""
    from core.records.jobs import get_job
    from core.records.tables import ResultInstance, Segmentation
    from worker.runners.export import export

    with service.ctx.db.session() as session:
        seg = session.get(Segmentation, produced["segmentation_id"])
        assert seg is not None
        assert {"dicom-seg", "rtstruct"} <= set(seg.outputs)
        before = dict(seg.outputs)
        job = get_job(session, seg.export_job_id, seg.project)
        session.expunge(job)
        instances = session.query(ResultInstance).filter_by(segmentation_id=seg.id).count()
    stages: list[str] = []
    export(service.ctx, job, lambda progress, stage: stages.append(stage))
    with service.ctx.db.session() as session:
        seg = session.get(Segmentation, produced["segmentation_id"])
        assert seg is not None
        assert seg.outputs == before
        assert session.query(ResultInstance).filter_by(segmentation_id=seg.id).count() == instances == 2
    assert stages == []  # nothing was read or written again


def test_deleting_the_study_removes_its_results(service: Service, produced: dict[str, Any]):  # last: deletes
    seg = pydicom.dcmread(io.BytesIO(produced["dicom-seg"]))
    with service.client("submitter") as client:
        assert client.delete(f"/v1/studies/{produced['study_id']}").status_code == 204
        assert client.get("/dicomweb/studies", params={"StudyInstanceUID": seg.StudyInstanceUID}).json() == []
        assert client.get(f"/dicomweb/studies/{seg.StudyInstanceUID}").status_code == 404
