"""``lrc pacs import``, ``dataset`` and ``push`` (DIMSE, DICOMweb, de-identified) against Orthanc and ``lrc serve``."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pydicom
import pytest
from typer.testing import CliRunner

from cli import app as cli
from tests.gateway.conftest import GATEWAY_AET, MOVE_AET, LrcService, ct_series
from tests.gateway.orthanc import Orthanc
from tests.gateway.test_deidentify import files_containing, identified_series
from tests.gateway.test_pacs import labelled_series
from tests.gateway.test_runner import wait_for


def pacs_of(orthanc: Orthanc) -> str:
    """The Orthanc's DIMSE address, AE@HOST:PORT."""
    return f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"


@pytest.mark.parametrize("how", ["c-get", "c-move", "dicomweb"])
def test_import_a_cohort_into_the_service(
    how: str, lrc_service: LrcService, orthanc: Orthanc, move_port: int, shared_data: Path, tmp_path: Path
):
    token = uuid.uuid4().hex[:8]
    for name in ("a", "b"):
        orthanc.upload(labelled_series(shared_data, tmp_path / name, f"Cohort {token}", "20200610", count=3))
    query = ["--modality", "CT", "--since", "2020-06-01", "--until", "2020-06-30", "--description", f"*{token}*"]
    query += {
        "c-get": ["--pacs", pacs_of(orthanc), "--ae-title", GATEWAY_AET],
        "c-move": ["--pacs", pacs_of(orthanc), "--ae-title", MOVE_AET, "--move", str(move_port)],
        "dicomweb": ["--dicomweb", orthanc.dicomweb],
    }[how]
    args = ["pacs", "import", *query, "--api-url", lrc_service.url, "--api-key-file", str(lrc_service.key_file)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    imported = [json.loads(line) for line in result.output.splitlines()]
    assert [(i["files"], len(i["series_ids"]), i["pseudonym_series_uid"]) for i in imported] == [(3, 1, None)] * 2

    headers = {"Authorization": f"Bearer {lrc_service.key}"}
    studies = httpx.get(f"{lrc_service.url}/v1/studies", headers=headers, timeout=30).json()
    stored = {s["series_instance_uid"]: s["id"] for study in studies for s in study["series"]}
    assert {i["series_uid"] for i in imported} <= set(stored)
    assert [stored[i["series_uid"]] for i in imported] == [i["series_ids"][0] for i in imported]

    again = CliRunner().invoke(cli, args)  # the same cohort again: the service keeps one copy
    assert again.exit_code == 0, again.output
    repeated = [json.loads(line) for line in again.output.splitlines()]
    assert sorted(map(str, repeated)) == sorted(map(str, imported))


def test_push_a_segmentation_by_hand(lrc_service: LrcService, orthanc: Orthanc, shared_data: Path, tmp_path: Path):
    files = ct_series(shared_data, tmp_path / "ct", count=6)
    series_uid = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    with httpx.Client(base_url=lrc_service.url, headers={"Authorization": f"Bearer {lrc_service.key}"}) as client:
        upload = client.post(
            "/v1/studies", files=[("files", (p.name, p.read_bytes(), "application/dicom")) for p in files]
        )
        series_id = upload.json()["series"][0]["id"]
        seg_id = client.post("/v1/segmentations", json={"series_id": series_id}).json()["id"]

    common = ["--api-url", lrc_service.url, "--api-key-file", str(lrc_service.key_file)]
    destination = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    # asked at once, the result is not made yet: without waiting, the push says so ...
    early = CliRunner().invoke(cli, ["pacs", "push", seg_id, "--destination", destination, "--wait", "0", *common])
    assert early.exit_code == 1
    assert "try again later" in early.output
    # ... and by default it waits for the segmentation and its DICOM export
    pushed = CliRunner().invoke(cli, ["pacs", "push", seg_id, "--destination", destination, *common])
    assert pushed.exit_code == 0, pushed.output
    (seg,) = orthanc.results_for(series_uid)
    assert seg["SOPInstanceUID"] == pushed.output.strip()
    by_stow = CliRunner().invoke(
        cli, ["pacs", "push", seg_id, "--stow-url", orthanc.dicomweb, "--format", "rtstruct", *common]
    )
    assert by_stow.exit_code == 0, by_stow.output
    assert len(orthanc.results_for(series_uid, "RTSTRUCT")) == 1

    neither = CliRunner().invoke(cli, ["pacs", "push", seg_id, *common])
    assert neither.exit_code == 2
    unknown = CliRunner().invoke(cli, ["pacs", "push", "no-such-id", "--destination", destination, *common])
    assert unknown.exit_code == 1
    assert "HTTP 404" in unknown.output


def test_push_stops_waiting_for_a_cancelled_segmentation(
    lrc_service: LrcService, orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    files = ct_series(shared_data, tmp_path / "ct", count=6)
    with httpx.Client(base_url=lrc_service.url, headers={"Authorization": f"Bearer {lrc_service.key}"}) as client:
        upload = client.post(
            "/v1/studies", files=[("files", (p.name, p.read_bytes(), "application/dicom")) for p in files]
        )
        asked = client.post("/v1/segmentations", json={"series_id": upload.json()["series"][0]["id"]}).json()
        assert client.delete(f"/v1/jobs/{asked['job_id']}").status_code == 200
    common = ["--api-url", lrc_service.url, "--api-key-file", str(lrc_service.key_file)]
    destination = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    started = time.monotonic()
    arguments = ["pacs", "push", asked["id"], "--destination", destination, "--wait", "600", *common]
    pushed = CliRunner().invoke(cli, arguments)
    assert pushed.exit_code == 1
    assert f"segmentation job {asked['job_id']} cancelled" in pushed.output
    # a hang check, not a speed target: a result that will never come must not be waited for
    assert time.monotonic() - started < 300


class _Refuse(http.server.BaseHTTPRequestHandler):
    """A service that refuses every key (401)."""

    def do_GET(self) -> None:
        self.server.asked += 1  # type: ignore[attr-defined]
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _push_attempts(url: str, wait: str, counter: Callable[[], int]) -> tuple[int, str]:
    """Push through a stand-in service at ``url``; how often it was asked, and the output."""
    before = counter()
    arguments = ["pacs", "push", "some-id", "--destination", "PACS@127.0.0.1:104", "--wait", wait]
    pushed = CliRunner().invoke(cli, [*arguments, "--api-url", url], env={"LRC_GATEWAY_API_KEY": "k"})
    assert pushed.exit_code == 1
    return counter() - before, pushed.output


def test_push_retries_a_dropped_connection_until_its_wait_runs_out_and_not_a_refusal():
    # a "service" that accepts each connection and drops it at once, as uvicorn does when a reused
    # keep-alive connection meets its idle timeout
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def drop() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=drop, daemon=True).start()
    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    refusing.asked = 0  # type: ignore[attr-defined]
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    try:
        dropped = f"http://127.0.0.1:{listener.getsockname()[1]}"
        once, output = _push_attempts(dropped, "0", lambda: len(accepted))
        assert once == 1  # no wait: the first failure is reported
        assert "the service did not answer" in output
        retried, output = _push_attempts(dropped, "3", lambda: len(accepted))
        assert retried >= 3  # pauses of 0.5, 1 and 2 s fit in 3 s: three tries or more
        assert "the service did not answer" in output
        refused = f"http://127.0.0.1:{refusing.server_address[1]}"
        asked, output = _push_attempts(refused, "3", lambda: refusing.asked)  # type: ignore[attr-defined]
        assert asked == 1  # a wrong key is reported at once, not waited through
        assert "401" in output
    finally:
        listener.close()
        refusing.shutdown()
        refusing.server_close()


def test_dataset_from_images_and_their_segs(
    lrc_service: LrcService, orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    from lrc.io import read_volume
    from lrc.io.labels import LabelTable
    from lrc.io.seg import write_seg
    from lrc.io.volume import Volume

    token = uuid.uuid4().hex[:8]
    labelled = labelled_series(shared_data, tmp_path / "a", f"Labelled {token}", "20210202", count=4)
    unlabelled = labelled_series(shared_data, tmp_path / "b", f"Labelled {token}", "20210202", count=4)
    image = read_volume(labelled)
    body = Volume((image.array > -500).astype("uint8"), image.affine)  # body vs air on the real CT pixels
    seg = write_seg(body, image, LabelTable.from_names({1: "body"}), tmp_path / "seg.dcm")
    for files in (labelled, unlabelled, [seg]):
        orthanc.upload(files)

    pacs = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    args = ["pacs", "dataset", "--pacs", pacs, "--ae-title", GATEWAY_AET, "--name", f"pacs-{token}"]
    args += [
        "--modality",
        "CT",
        "--description",
        f"*{token}*",
        "--api-url",
        lrc_service.url,
        "--api-key-file",
        str(lrc_service.key_file),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["name"] == f"pacs-{token}"
    assert created["labels"] == {"1": "body"}
    assert len(created["cases"]) == 1  # the series without a SEG is left out

    nothing = CliRunner().invoke(cli, [*args[:-4], "--description", "*no-such-series*", *args[-4:]])
    assert nothing.exit_code == 1
    assert "none of the series" in nothing.output


def test_dataset_from_segs_and_rtstructs_over_dicomweb_deidentified(
    lrc_service: LrcService, orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    from lrc.io import read_volume
    from lrc.io.labels import LabelTable
    from lrc.io.rtstruct import write_rtstruct
    from lrc.io.seg import write_seg

    token = uuid.uuid4().hex[:8]
    by_seg = labelled_series(shared_data, tmp_path / "a", f"Mixed {token}", "20210303", count=4)
    by_rtstruct = labelled_series(shared_data, tmp_path / "b", f"Mixed {token}", "20210303", count=4)
    image = read_volume(by_seg)
    body = image.with_array((image.array > -500).astype("uint8"))  # body vs air on the real CT pixels
    seg = write_seg(body, image, LabelTable.from_names({1: "body"}), tmp_path / "seg.dcm")
    image = read_volume(by_rtstruct)
    rim = (image.array > -500).astype("uint8")
    rim[(image.array > 100)] = 2  # dense tissue as a second structure
    names = LabelTable.from_names({1: "body", 2: "dense"})
    rtstruct = write_rtstruct(image.with_array(rim), image, names, tmp_path / "rt.dcm")
    for files in (by_seg, by_rtstruct, [seg], [rtstruct]):
        orthanc.upload(files)

    mapping = tmp_path / "pseudonyms.sqlite"
    args = ["pacs", "dataset", "--dicomweb", orthanc.dicomweb, "--name", f"mixed-{token}", "--modality", "CT"]
    args += ["--description", f"*{token}*", "--deidentify", "--mapping", str(mapping)]
    result = CliRunner().invoke(cli, [*args, "--api-url", lrc_service.url, "--api-key-file", str(lrc_service.key_file)])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["labels"] == {"1": "body", "2": "dense"}
    assert len(created["cases"]) == 2
    assert sorted(case["label"].split(".", 1)[1] for case in created["cases"]) == ["dcm", "nii.gz"]
    headers = {"Authorization": f"Bearer {lrc_service.key}"}
    studies = httpx.get(f"{lrc_service.url}/v1/studies", headers=headers, timeout=30).json()
    stored = {s["series_instance_uid"] for study in studies for s in study["series"]}
    originals = {str(pydicom.dcmread(files[0]).SeriesInstanceUID) for files in (by_seg, by_rtstruct)}
    assert not originals & stored  # the service has the pseudonymous series only
    for uid in originals:
        assert files_containing(lrc_service.log.parent / "data", uid.encode()) == []


def test_import_deidentified_and_push_back_identified(
    lrc_service: LrcService, orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    token = uuid.uuid4().hex
    files = identified_series(shared_data, tmp_path / "ct", token)
    original = pydicom.dcmread(files[0])
    orthanc.upload(files)
    mapping = tmp_path / "pseudonyms.sqlite"
    common = ["--api-url", lrc_service.url, "--api-key-file", str(lrc_service.key_file)]
    args = ["pacs", "import", "--pacs", pacs_of(orthanc), "--ae-title", GATEWAY_AET, "--description", f"*{token[:8]}*"]
    result = CliRunner().invoke(cli, [*args, "--deidentify", "--mapping", str(mapping), *common])
    assert result.exit_code == 0, result.output
    (imported,) = [json.loads(line) for line in result.output.splitlines()]
    assert imported["pseudonym_series_uid"] not in (None, original.SeriesInstanceUID)
    assert files_containing(lrc_service.log.parent / "data", token.encode()) == []

    with httpx.Client(base_url=lrc_service.url, headers={"Authorization": f"Bearer {lrc_service.key}"}) as client:
        seg_id = client.post("/v1/segmentations", json={"series_id": imported["series_ids"][0]}).json()["id"]
        wait_for("a DICOM SEG", lambda: "dicom-seg" in client.get(f"/v1/segmentations/{seg_id}").json()["formats"])
    destination = ["--destination", pacs_of(orthanc)]
    pushed = CliRunner().invoke(cli, ["pacs", "push", seg_id, *destination, "--mapping", str(mapping), *common])
    assert pushed.exit_code == 0, pushed.output
    (seg,) = orthanc.results_for(original.SeriesInstanceUID)
    assert (seg["PatientName"], seg["PatientID"]) == (f"Secret^{token}", f"PID{token}")
    assert seg["StudyInstanceUID"] == original.StudyInstanceUID
    unknown = CliRunner().invoke(cli, ["pacs", "push", seg_id, *destination, "--mapping", str(tmp_path / "x"), *common])
    assert unknown.exit_code == 2
