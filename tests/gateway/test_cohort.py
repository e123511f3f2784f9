"""``lrc pacs import`` and ``lrc pacs push`` against a real Orthanc and ``lrc serve``."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pydicom
from typer.testing import CliRunner

from lrc.cli import app as cli
from tests.gateway.conftest import GATEWAY_AET, LrcService, ct_series
from tests.gateway.orthanc import Orthanc
from tests.gateway.test_pacs import labelled_series


def test_import_a_cohort_into_the_service(lrc_service: LrcService, orthanc: Orthanc, shared_data: Path, tmp_path: Path):
    token = uuid.uuid4().hex[:8]
    for name in ("a", "b"):
        orthanc.upload(labelled_series(shared_data, tmp_path / name, f"Cohort {token}", "20200610", count=3))
    pacs = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    args = ["pacs", "import", "--pacs", pacs, "--ae-title", GATEWAY_AET, "--modality", "CT"]
    args += ["--since", "2020-06-01", "--until", "2020-06-30", "--description", f"*{token}*"]
    args += ["--api-url", lrc_service.url, "--api-key", lrc_service.key]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    imported = [json.loads(line) for line in result.output.splitlines()]
    assert [(i["files"], len(i["series_ids"])) for i in imported] == [(3, 1), (3, 1)]

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
        deadline = time.monotonic() + 120
        while "dicom-seg" not in client.get(f"/v1/segmentations/{seg_id}").json()["formats"]:
            assert time.monotonic() < deadline, "no DICOM SEG in 120 s"
            time.sleep(0.5)

    common = ["--api-url", lrc_service.url, "--api-key", lrc_service.key]
    destination = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
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
        "--api-key",
        lrc_service.key,
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
