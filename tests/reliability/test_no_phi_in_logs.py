"""No patient identifiers, DICOM UIDs or keys in logs; no patient identifiers in error messages.

Real DICOM (the factory's real CT slices, and the real JPEG 2000 CT series) re-labelled with a
known PatientName, PatientID and birth date goes through a running ``lrc serve``: uploaded, segmented,
exported as DICOM SEG (the workers read the headers), searched and retrieved by DICOMweb with the
patient's identifiers and UIDs in query strings and paths, asked with API keys in query strings, and
sent again damaged in ways that make the readers fail (through REST and STOW-RS). Then every error
body and the whole log of the service (uvicorn's access log, the API and both workers) are searched
for the identifiers, the UIDs of the series and its SEG, and the keys.
"""

from __future__ import annotations

import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import httpx
import pydicom

from tests.reliability.conftest import STARTER, Served
from tests.service.harness import ADMIN_KEY
from tests.service.helpers import ct_series, multipart, series_with_uids

NAME = ("Quxhollow", "Phiprobe")  # family, given: neither is a word that appears in logs by chance
PATIENT_ID = "PID-4711-0815"
BIRTH_DATE = "19230417"
IDENTIFIERS = (*NAME, PATIENT_ID, BIRTH_DATE)
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
KEY_PARAMETERS = ("key", "apikey", "api_key", "token", "access_token")


def _relabel(paths: list[Path], **changes: Any) -> list[Path]:
    """Give real files the test patient (and ``changes``: attributes set, or deleted when ``None``), in place."""
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the odd values set here
            ds = pydicom.dcmread(path)
            ds.PatientName = "^".join(NAME)
            ds.PatientID = PATIENT_ID
            ds.PatientBirthDate = BIRTH_DATE
            ds.OtherPatientIDs = PATIENT_ID
            for keyword, value in changes.items():
                if value is None:
                    delattr(ds, keyword)
                else:
                    setattr(ds, keyword, value)
            ds.save_as(path)
    return paths


def _related(paths: list[Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p.read_bytes() for p in paths]
    body = b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def _uids(datasets: list[pydicom.Dataset]) -> set[str]:
    return {str(ds.get(keyword)) for ds in datasets for keyword in UID_KEYWORDS if ds.get(keyword)}


def _ask_with_identifiers_in_queries(client: httpx.Client, seg: pydicom.Dataset, key: str) -> list[httpx.Response]:
    """DICOMweb searches and retrievals naming the patient and the UIDs; API requests with keys as parameters."""
    study, series, sop = seg.StudyInstanceUID, seg.SeriesInstanceUID, seg.SOPInstanceUID
    asked = [
        client.get("/dicomweb/studies", params={"PatientID": PATIENT_ID, "PatientName": "^".join(NAME)}),
        client.get("/dicomweb/instances", params={"StudyInstanceUID": study, "00100030": BIRTH_DATE}),
        client.get(f"/dicomweb/studies/{study}/series", params={"SeriesInstanceUID": series}),
        client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata"),
        client.get(f"/dicomweb/studies/{study}/series/{series}", headers={"Accept": "multipart/related"}),
    ]
    for name in KEY_PARAMETERS:
        asked.append(client.get("/v1/jobs", params={"state": "queued", name: key}))
        asked.append(client.get("/dicomweb/series", params={name: ADMIN_KEY, "PatientID": PATIENT_ID}))
    asked.append(client.get("/v1/jobs", params={"kind": "export", "token": ADMIN_KEY}))
    return asked


def test_patient_identifiers_stay_out_of_logs_and_errors(served: Served, shared_data: Path, tmp_path: Path):
    client = served.client
    not_ready: list[httpx.Response] = []
    damaged: dict[str, list[httpx.Response]] = {}
    good = _relabel(series_with_uids(shared_data, tmp_path / "good", count=6))
    upload = client.post("/v1/studies", files=multipart(good))
    assert upload.status_code == 201, upload.text
    series_id = upload.json()["series"][0]["id"]
    accepted = client.post("/v1/segmentations", json={"series_id": series_id, "model": STARTER})
    assert accepted.status_code == 202, accepted.text
    segmentation = accepted.json()["id"]
    job = served.wait(accepted.json()["job_id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert job["state"] == "succeeded", job
    deadline = time.monotonic() + 120
    while (
        seg := client.get(f"/v1/segmentations/{segmentation}/result", params={"format": "dicom-seg"})
    ).status_code == 409:
        not_ready.append(seg)  # "not ready yet" while the export job runs (as often as it takes)
        assert time.monotonic() < deadline, seg.text
        time.sleep(0.3)
    assert seg.status_code == 200, seg.text
    seg_dataset = pydicom.dcmread(pydicom.filebase.DicomBytesIO(seg.content))
    assert str(seg_dataset.PatientID) == PATIENT_ID  # it is there
    uids = _uids([seg_dataset, *(pydicom.dcmread(p, stop_before_pixels=True) for p in good)])
    viewer_key = client.post("/v1/keys", json={"name": "query-string-key", "role": "viewer"}).json()["token"]
    for asked in _ask_with_identifiers_in_queries(client, seg_dataset, viewer_key):
        assert asked.status_code == 200, (asked.request.url, asked.text)

    # Failing requests, each carrying the patient's identifiers in the files.
    broken = {
        "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        "spacing-nan": lambda p: _relabel([p], PixelSpacing=["NaN", "NaN"]),
        "no-pixels": lambda p: _relabel([p], PixelData=None),
        "too-long-id": lambda p: _relabel([p], OtherPatientIDs=PATIENT_ID * 6),  # pydicom warns about its length
    }
    for name, damage in broken.items():
        paths = _relabel(series_with_uids(shared_data, tmp_path / name, count=2))
        for path in paths:
            damage(path)
        body, content_type = _related(paths)
        damaged[name] = [
            client.post("/v1/studies", files=multipart(paths)),
            client.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type}),
        ]
    (tmp_path / "j2k").mkdir()
    jpeg2000 = _relabel([Path(shutil.copy(p, tmp_path / "j2k")) for p in ct_series(shared_data)[:2]])
    for path in jpeg2000:
        path.write_bytes(path.read_bytes()[:-4000])  # the real JPEG 2000 codestream, cut
    damaged["jpeg2000-cut"] = [client.post("/v1/studies", files=multipart(jpeg2000))]

    # Unreadable files are refused; an over-long OtherPatientIDs is only warned about by pydicom.
    statuses = {name: [r.status_code for r in answers] for name, answers in damaged.items()}
    assert all(code >= 400 for name, codes in statuses.items() if name != "too-long-id" for code in codes), statuses
    failed = [r for answers in damaged.values() for r in answers if r.status_code >= 400] + not_ready
    assert all(r.status_code < 500 for r in failed), [r.text for r in failed]
    for response in failed:
        for identifier in IDENTIFIERS:
            assert identifier not in response.text, (identifier, response.request.url, response.text)
    time.sleep(1.0)  # let the workers' last lines reach the log
    log = served.log.read_text(errors="replace")
    # The search covers the workers too: their lines about these very jobs are in the log.
    assert f"job {accepted.json()['job_id']} (segment) started" in log
    assert "(export) started" in log
    secrets = (*IDENTIFIERS, *uids, viewer_key, ADMIN_KEY)
    leaked = {secret: log.count(secret) for secret in secrets if secret in log}
    lines = [line for line in log.splitlines() if any(secret in line for secret in leaked)][:5]
    assert not leaked, f"patient identifiers, UIDs or keys in the service log {served.log}: {leaked}, {lines}"
    # The lines are there, redacted: the access log (DICOMweb queries, the API's own parameters), the SEG writer's.
    assert '"GET /dicomweb/studies?[redacted] HTTP/1.1" 200' in log
    assert '"GET /v1/jobs?state=queued&token=[redacted] HTTP/1.1" 200' in log
    assert '"GET /dicomweb/studies/[uid]/series/[uid]/instances/[uid]/metadata HTTP/1.1" 200' in log
    assert 'from dataset "[uid]"' in log  # highdicom's INFO lines name the source instances
