"""The service's STOW-RS endpoint (``POST /dicomweb/studies``), with Orthanc's DICOMweb client as the sender."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pydicom

from tests.gateway.conftest import LrcService, ct_series
from tests.gateway.orthanc import Orthanc

FAILED, REFERENCED, REASON, SOP_INSTANCE = "00081198", "00081199", "00081197", "00081155"


def related(parts: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/related body of (media type, bytes) parts, and its content type."""
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + data + b"\r\n" for kind, data in parts)
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(service: LrcService, parts: list[tuple[str, bytes]]) -> httpx.Response:
    body, content_type = related(parts)
    headers = {"Authorization": f"Bearer {service.key}", "Content-Type": content_type}
    return httpx.post(f"{service.url}/dicomweb/studies", content=body, headers=headers, timeout=120)


def sop_uids(answer: dict, sequence: str) -> list[str]:
    items = answer.get(sequence, {}).get("Value", [])
    return [item[SOP_INSTANCE]["Value"][0] for item in items if SOP_INSTANCE in item]


def test_orthanc_sends_a_series_by_stow_rs(
    lrc_service: LrcService, orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    files = ct_series(shared_data, tmp_path / "ct", count=4)
    series_uid = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    server = {"Url": f"{lrc_service.url}/dicomweb/", "HttpHeaders": {"Authorization": f"Bearer {lrc_service.key}"}}
    response = httpx.put(f"{orthanc.url}/dicom-web/servers/lrc", json=server, timeout=30)
    response.raise_for_status()
    orthanc.post("/dicom-web/servers/lrc/stow", {"Resources": [orthanc.upload(files)], "Synchronous": True})

    studies = httpx.get(
        f"{lrc_service.url}/v1/studies", headers={"Authorization": f"Bearer {lrc_service.key}"}, timeout=30
    ).json()
    found = [s for study in studies for s in study["series"] if s["series_instance_uid"] == series_uid]
    assert len(found) == 1
    assert found[0]["files"] == 4
    assert found[0]["exportable"]


def test_stow_answer_lists_stored_and_failed_instances(lrc_service: LrcService, shared_data: Path, tmp_path: Path):
    files = ct_series(shared_data, tmp_path / "ct", count=3)
    seg = shared_data / "dicom" / "seg_dcmqi" / "liver.dcm"
    parts = [("application/dicom", p.read_bytes()) for p in files]
    response = stow(lrc_service, [*parts, ("application/dicom", seg.read_bytes()), ("text/plain", b"not DICOM")])
    assert response.status_code == 202, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    assert response.headers["location"].startswith("/v1/studies/")
    answer = response.json()
    assert sorted(sop_uids(answer, REFERENCED)) == sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in files)
    failed = answer[FAILED]["Value"]
    assert [item[REASON]["Value"][0] for item in failed] == [0x0110, 0xC000]  # a SEG is no image; text is no DICOM
    assert sop_uids(answer, FAILED) == [str(pydicom.dcmread(seg).SOPInstanceUID)]

    again = stow(lrc_service, parts)  # the same instances again: stored once, all referenced
    assert again.status_code == 200
    assert sorted(sop_uids(again.json(), REFERENCED)) == sorted(sop_uids(answer, REFERENCED))


def test_stow_refusals(lrc_service: LrcService, shared_data: Path):
    seg = shared_data / "dicom" / "seg_dcmqi" / "liver.dcm"
    nothing_stored = stow(lrc_service, [("application/dicom", seg.read_bytes())])
    assert nothing_stored.status_code == 409
    assert FAILED in nothing_stored.json()
    headers = {"Authorization": f"Bearer {lrc_service.key}", "Content-Type": "application/dicom"}
    wrong_type = httpx.post(f"{lrc_service.url}/dicomweb/studies", content=seg.read_bytes(), headers=headers)
    assert wrong_type.status_code == 415
    assert wrong_type.headers["content-type"] == "application/problem+json"
    body, content_type = related([("application/dicom", seg.read_bytes())])
    anonymous = httpx.post(f"{lrc_service.url}/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert anonymous.status_code == 401


def segment(service: LrcService, files: list[Path]) -> None:
    """Upload a series, segment it and wait for its DICOM export (the normal flow, through the API)."""
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.key}"}, timeout=120) as client:
        upload = client.post("/v1/studies", files=[("files", (p.name, p.read_bytes())) for p in files])
        assert upload.status_code in (200, 201), upload.text
        created = client.post("/v1/segmentations", json={"series_id": upload.json()["series"][0]["id"]})
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + 120
        while True:
            seg = client.get(f"/v1/segmentations/{created.json()['id']}").json()
            if "dicom-seg" in seg["formats"]:
                return
            assert time.monotonic() < deadline, seg
            time.sleep(0.5)


def test_orthanc_pulls_the_seg_by_qido_and_wado(
    lrc_service: LrcService, orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    files = ct_series(shared_data, tmp_path / "ct", count=6)
    source = pydicom.dcmread(files[0])
    segment(lrc_service, files)
    server = {"Url": f"{lrc_service.url}/dicomweb/", "HttpHeaders": {"Authorization": f"Bearer {lrc_service.key}"}}
    httpx.put(f"{orthanc.url}/dicom-web/servers/lrc", json=server, timeout=30).raise_for_status()

    query = {"Uri": f"/studies/{source.StudyInstanceUID}/series", "Arguments": {"Modality": "SEG"}}
    found = orthanc.post("/dicom-web/servers/lrc/qido", query)  # Orthanc's DICOMweb client searches the service
    [seg_series] = [s["0020000E"]["Value"] for s in found]  # Orthanc's answer: one value, as a string
    assert found[0]["00080060"]["Value"] == "SEG"

    resources = {"Resources": [{"Study": str(source.StudyInstanceUID), "Series": seg_series}]}
    orthanc.post("/dicom-web/servers/lrc/retrieve", resources)  # WADO-RS of the series, stored in Orthanc
    [stored] = orthanc.results_for(str(source.SeriesInstanceUID), "SEG")
    assert stored["SeriesInstanceUID"] == seg_series
    assert stored["StudyInstanceUID"] == source.StudyInstanceUID
