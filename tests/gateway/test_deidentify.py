"""De-identification at ingest: the service sees pseudonyms only, the PACS gets results on the originals."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pydicom

from gateway.deidentify import Pseudonyms
from tests.gateway.conftest import MODALITY, GatewayProcess, LrcService, ct_series
from tests.gateway.orthanc import Orthanc
from tests.gateway.test_runner import outbox_rows, wait_for


def identified_series(shared_data: Path, folder: Path, token: str, count: int = 6) -> list[Path]:
    """A CT series of patient ``Secret^<token>``; its ID, accession number and series description contain ``token``.

    The patient is female, with the age, size and weight of :data:`BODY`.
    """
    files = ct_series(shared_data, folder, count=count)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientName = f"Secret^{token}"
        ds.PatientID = f"PID{token}"
        ds.AccessionNumber = f"A{token[:8]}"
        ds.SeriesDescription = f"Identified {token}"
        ds.PatientSex = "F"
        for keyword, value in BODY.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    return files


# PS3.15 Table E.1-1: Patient's Age, Size and Weight are removed (X); dicognito keeps them.
BODY = {"PatientAge": "047Y", "PatientSize": "1.73", "PatientWeight": "68.5"}


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def dicom_header(path: Path) -> pydicom.Dataset | None:
    """The header of a DICOM file (one with the ``DICM`` preamble); None for anything else."""
    if not path.is_file():
        return None
    with path.open("rb") as file:
        if file.read(132)[128:] != b"DICM":
            return None
    return pydicom.dcmread(path, stop_before_pixels=True)


def test_mapping_round_trip(shared_data: Path, tmp_path: Path):
    token = uuid.uuid4().hex
    files = identified_series(shared_data, tmp_path / "ct", token, count=2)
    original = pydicom.dcmread(files[0])
    mapping = Pseudonyms(tmp_path / "p.sqlite")
    series = mapping.deidentify_folder(tmp_path / "ct", tmp_path / "deid")
    again = Pseudonyms(tmp_path / "p.sqlite").deidentify_folder(tmp_path / "ct", tmp_path / "deid2")
    assert series == again  # the seed is kept: the same pseudonyms after a restart
    deid = sorted((tmp_path / "deid").glob("*.dcm"))
    assert [p.read_bytes() for p in deid] == [(tmp_path / "deid2" / p.name).read_bytes() for p in deid]
    assert not any(token.encode() in p.read_bytes() for p in deid)
    pseudo = pydicom.dcmread(deid[0])
    assert pseudo.StudyInstanceUID != original.StudyInstanceUID
    assert mapping.original_of(pseudo.SeriesInstanceUID) == original.SeriesInstanceUID
    study = mapping.study(pseudo.StudyInstanceUID)
    assert study is not None
    assert study["study_uid"] == original.StudyInstanceUID

    # PS3.15 E.1.1: the de-identified instance says so, and which profile and option were applied
    assert pseudo.PatientIdentityRemoved == "YES"
    assert pseudo.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [c.CodeValue for c in pseudo.DeidentificationMethodCodeSequence] == ["113100", "113107"]

    originals = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, files)}
    for path in deid:
        back = mapping.reidentify(pydicom.dcmread(path))
        source = originals[back.SOPInstanceUID]
        for keyword in ("PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyInstanceUID"):
            assert back[keyword].value == source[keyword].value, keyword
        assert back.PatientIdentityRemoved == "NO"
        for keyword in ("DeidentificationMethodCodeSequence", "LongitudinalTemporalInformationModified"):
            assert keyword not in back, keyword


def test_age_size_and_weight_removed_sex_emptied(shared_data: Path, tmp_path: Path):
    # Patient's Sex is action Z: present (type 2) but empty, and restored in the results.
    (path,) = identified_series(shared_data, tmp_path / "ct", uuid.uuid4().hex, count=1)
    mapping = Pseudonyms(tmp_path / "p.sqlite")
    pseudo = mapping.deidentify(pydicom.dcmread(path))
    assert [k for k in BODY if k in pseudo] == []
    assert pseudo["PatientSex"].is_empty
    male = pydicom.dcmread(path)
    male.PatientSex = "M"
    assert mapping.deidentify(male).PatientName == pseudo.PatientName  # nor does the pseudonym's first name tell it
    assert mapping.reidentify(pseudo).PatientSex == "F"


# Attributes PS3.15's basic profile removes (Table E.1-1, action X) that dicognito leaves as they are.
PROFILE_REMOVED = (
    "MedicalAlerts",
    "Allergies",
    "EthnicGroup",
    "DerivationDescription",
    "DeviceSerialNumber",
    "AcquisitionComments",
    "StudyComments",
    "AdmissionID",
    "PatientState",
    "VisitComments",
    "ReasonForTheRequestedProcedure",
    "ResultsComments",
    "PatientTransportArrangements",
    "PersonTelephoneNumbers",
    "ReferringPhysicianAddress",
    "PerformedStationName",
    "ScheduledStudyLocation",
    "AcquisitionDeviceProcessingDescription",
)


def test_private_and_profile_removed_attributes_do_not_reach_the_service(shared_data: Path, tmp_path: Path):
    token = uuid.uuid4().hex
    files = identified_series(shared_data, tmp_path / "ct", token, count=2)
    for path in files:
        ds = pydicom.dcmread(path)
        for keyword in PROFILE_REMOVED:
            setattr(ds, keyword, f"T{token[:12]}")
        ds.private_block(0x0009, "ACME 1.0", create=True).add_new(0x10, "LO", f"Secret^{token}")
        item = pydicom.Dataset()  # a nested copy: the profile applies at every level
        item.ReasonForTheRequestedProcedure = f"T{token[:12]}"
        ds.RequestAttributesSequence = [item]
        ds.save_as(path)
    Pseudonyms(tmp_path / "p.sqlite").deidentify_folder(tmp_path / "ct", tmp_path / "deid")
    deid = sorted((tmp_path / "deid").glob("*.dcm"))
    assert len(deid) == 2
    for path in deid:
        assert token[:12].encode() not in path.read_bytes(), path
        ds = pydicom.dcmread(path)
        assert not [e.tag for e in ds.iterall() if e.tag.is_private]


def test_gateway_deidentifies_and_results_come_back_identified(
    gateway_factory: Callable[..., GatewayProcess],
    lrc_service: LrcService,
    orthanc: Orthanc,
    shared_data: Path,
    tmp_path: Path,
):
    token = uuid.uuid4().hex
    gateway = gateway_factory("--deidentify", "--rtstruct")
    files = identified_series(shared_data, tmp_path / "ct", token)
    original = pydicom.dcmread(files[0])
    answer = orthanc.send(MODALITY, orthanc.upload(files))
    assert answer.get("FailedInstancesCount", 0) == 0, answer

    segs = wait_for("a SEG in Orthanc", lambda: orthanc.results_for(original.SeriesInstanceUID), timeout=180)
    assert len(segs) == 1
    seg = segs[0]
    assert (seg["PatientName"], seg["PatientID"]) == (f"Secret^{token}", f"PID{token}")
    assert seg["StudyInstanceUID"] == original.StudyInstanceUID
    assert seg["AccessionNumber"] == original.AccessionNumber
    assert seg["PatientSex"] == "F"  # emptied for the service, put back from the mapping
    sources = {pydicom.dcmread(p).SOPInstanceUID for p in files}
    referenced = seg["ReferencedSeriesSequence"][0]["ReferencedInstanceSequence"]
    assert {item["ReferencedSOPInstanceUID"] for item in referenced} <= sources
    (rtstruct,) = wait_for("an RTSTRUCT", lambda: orthanc.results_for(original.SeriesInstanceUID, "RTSTRUCT"))
    assert (rtstruct["PatientName"], rtstruct["StudyInstanceUID"]) == (f"Secret^{token}", original.StudyInstanceUID)
    assert rtstruct["ReferencedFrameOfReferenceSequence"][0]["FrameOfReferenceUID"] == original.FrameOfReferenceUID
    wait_for("every step done", lambda: [r["state"] for r in outbox_rows(gateway)] == ["done"] * 5)

    # The service holds the pseudonymous series only: no original name, ID or UID in its records or blobs.
    service_data = lrc_service.log.parent / "data"
    for needle in (token, original.SeriesInstanceUID, original.StudyInstanceUID):
        assert files_containing(service_data, needle.encode()) == [], needle
    with sqlite3.connect(gateway.data_dir / "pseudonyms.sqlite") as db:
        (pseudonym,) = db.execute(
            "SELECT pseudonym FROM uids WHERE original = ?", (original.SeriesInstanceUID,)
        ).fetchone()
    headers = {"Authorization": f"Bearer {lrc_service.key}"}
    studies = httpx.get(f"{lrc_service.url}/v1/studies", headers=headers, timeout=30).json()
    assert pseudonym in {s["series_instance_uid"] for study in studies for s in study["series"]}
    stored = [ds for ds in map(dicom_header, service_data.rglob("*")) if ds is not None]
    received = [ds for ds in stored if ds.get("SeriesInstanceUID") == pseudonym]  # other tests' series too
    assert len(received) == len(files)
    for ds in received:  # the profile's removed and emptied patient attributes, in every stored instance
        assert [k for k in BODY if k in ds] == []
        assert ds["PatientSex"].is_empty


def test_mapping_file_is_private(shared_data: Path, tmp_path: Path):
    # It holds the secret seed and every patient's original name, ID and UIDs.
    earlier = tmp_path / "earlier.sqlite"
    sqlite3.connect(earlier).close()
    earlier.chmod(0o644)  # made by a version that left it readable by everyone
    for path in (tmp_path / "new" / "p.sqlite", earlier):
        mapping = Pseudonyms(path)
        mapping.deidentify_folder(ct_series(shared_data, tmp_path / path.stem, count=1)[0].parent, tmp_path / "deid")
        for file in path.parent.glob(f"{path.name}*"):  # with its -wal and -shm files
            assert file.stat().st_mode & 0o077 == 0, file
        mapping.close()
