"""The page in a real Chromium: sign in, upload a real DICOM CT, segment it with the starter model,
see the label overlay on the canvas, download NIfTI / DICOM SEG / RTSTRUCT; fine-tune and watch the
curves; promote and roll back; pre-train and fine-tune from the backbone."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import pydicom
from playwright.sync_api import Browser, Page, expect

from tests.service.harness import Service
from tests.service.helpers import series_with_uids

STARTER = "ct-abdomen-starter"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

DATA_TRANSFER = """(files) => {
  const transfer = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], f.name, { type: "application/dicom" }));
  }
  return transfer;
}"""

COUNT_COLOUR = """([r, g, b]) => {
  const canvas = document.querySelector('#slice-canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b) n++;
  return n;
}"""


def liver_colour(service: Service) -> list[int]:
    """The starter model card's colour for the liver."""
    with service.client() as client:
        card = client.get(f"/v1/models/{STARTER}/versions/1").json()["card"]
    (colour,) = [label["color"] for label in card["labels"].values() if label["name"] == "liver"]
    return list(colour)


def save(page: Page, screenshots: Path, name: str) -> None:
    """Screenshot of the whole page (docs/screenshots with LRC_WEB_SCREENSHOTS=docs/screenshots)."""
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def test_sign_in_refuses_a_wrong_key(browser: Browser, service: Service, screenshots: Path) -> None:
    tab = browser.new_page()
    tab.goto(f"{service.url}/")
    save(tab, screenshots, "sign-in")
    tab.fill("#api-key", "not-a-key")
    tab.click("#signin-form button")
    expect(tab.locator("#message")).to_contain_text("unknown or revoked")
    expect(tab.locator("#tabs")).to_be_hidden()
    assert tab.evaluate("sessionStorage.getItem('lrc.apiKey')") is None
    tab.close()


def test_upload_segment_view_download(page: Page, service: Service, dicom_ct: list[Path], screenshots: Path) -> None:
    page.set_input_files("#file-input", [str(p) for p in dicom_ct])
    expect(page.locator("#upload-notes")).to_contain_text("Stored: 1 series", timeout=60_000)
    row = page.locator("#series-table tbody tr").first
    expect(row).to_contain_text("CT")
    expect(row).to_contain_text("512×512×20")
    expect(page.locator("#model-select")).to_have_value(f"{STARTER}:1")
    study = page.locator("#study-table tbody tr.selected td")  # what people recognise, not a hash
    expect(study.nth(1)).to_have_text("CT")
    expect(study.nth(3)).to_have_text("1")
    expect(study.nth(4)).to_have_text("20")
    assert not re.fullmatch(r"[0-9a-f]{8}.*", study.nth(0).inner_text()), study.nth(0).inner_text()
    save(page, screenshots, "studies")

    row.get_by_role("button", name="Segment").click()
    expect(page.locator("#segment-job")).to_be_visible()
    canvas = page.locator("#slice-canvas")
    expect(canvas).to_have_attribute("data-loaded", "labels", timeout=60_000)
    assert page.locator("#segment-job").get_attribute("data-state") == "succeeded"
    expect(page.locator("#legend")).to_contain_text("liver")
    expect(page.locator("#viewer-title")).not_to_contain_text("(tiles")  # the starter: whole slices, as its card says

    colour = liver_colour(service)
    page.fill("#opacity", "1")
    assert page.evaluate(COUNT_COLOUR, colour) > 100  # the liver, drawn opaque in its card colour
    page.fill("#opacity", "0")
    assert page.evaluate(COUNT_COLOUR, colour) == 0  # overlay off: only grey
    page.fill("#opacity", "0.5")
    for plane in ("coronal", "sagittal", "axial"):
        page.check(f"input[name=plane][value={plane}]")
        expect(page.locator("#slice-label")).to_contain_text(plane)
    # This series lacks UIDs a DICOM SEG must reference (see SeriesOut.exportable): NIfTI only, and the page says why.
    expect(page.locator("#download-note")).to_contain_text("without them")
    expect(page.locator("#downloads button[data-format=dicom-seg]")).to_be_disabled()
    save(page, screenshots, "viewer")

    with page.expect_download() as nifti:
        page.click("#downloads button[data-format=nifti]")
    assert gzip.decompress(Path(nifti.value.path()).read_bytes())[344:347] == b"n+1"


def test_drop_dicom_then_download_seg_and_rtstruct(page: Page, shared_data: Path, tmp_path: Path) -> None:
    paths = series_with_uids(shared_data, tmp_path / "series")
    files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    dropped = page.evaluate_handle(DATA_TRANSFER, files)
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    expect(page.locator("#upload-notes")).to_contain_text("1 series", timeout=60_000)
    page.select_option("#inference-select", "tiles")  # tiles of the model's training patch; the title says so
    page.locator("#series-table tbody tr").first.get_by_role("button", name="Segment").click()
    expect(page.locator("#slice-canvas")).to_have_attribute("data-loaded", "labels", timeout=60_000)
    expect(page.locator("#viewer-title")).to_contain_text("(tiles of 128)")
    for fmt, sop_class in (("dicom-seg", SEG_STORAGE), ("rtstruct", RTSTRUCT_STORAGE)):
        button = page.locator(f"#downloads button[data-format={fmt}]")
        expect(button).to_be_enabled(timeout=60_000)
        with page.expect_download() as dicom:
            button.click()
        assert pydicom.dcmread(dicom.value.path()).SOPClassUID == sop_class


def test_viewer_scrolls_and_windows(page: Page, service: Service, shared_data: Path) -> None:
    ct = shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct_sm.nii.gz"
    page.set_input_files("#file-input", str(ct))
    expect(page.locator("#series-table tbody tr")).to_have_count(1, timeout=60_000)
    page.locator("#series-table tbody tr").first.get_by_role("button", name="View").click()
    expect(page.locator("#slice-canvas")).to_have_attribute("data-loaded", "image", timeout=30_000)
    size = page.evaluate("(c => [c.width, c.height])(document.querySelector('#slice-canvas'))")
    assert sorted(size) == [101, 122]  # axial slice of the 122x101x30 CT
    label = page.locator("#slice-label")
    before = label.text_content()
    page.locator("#slice-canvas").hover()
    page.mouse.wheel(0, 200)
    expect(label).not_to_have_text(before or "")
    page.select_option("#preset", "lung")
    expect(page.locator("#window-width")).to_have_value("1500")
    expect(page.locator("#window-level")).to_have_value("-600")


def test_finetune_curve_and_promotion(page: Page, service: Service, shared_data: Path, screenshots: Path) -> None:
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    page.goto(f"{service.url}/ui/#training")
    page.fill("#dataset-form input[name=name]", "web-two-cases")
    page.fill("#dataset-form input[name=labels]", "5=liver, 1=spleen, 6=stomach, 52=aorta")
    page.click("#add-case")
    for index in range(2):
        page.locator(".case-image").nth(index).set_input_files(str(folder / "example_ct_sm.nii.gz"))
        page.locator(".case-label").nth(index).set_input_files(str(folder / "example_seg.nii.gz"))
    page.click("#dataset-form button[type=submit]")
    expect(page.locator("#dataset-result")).to_contain_text("2 case(s)", timeout=60_000)
    chosen = page.locator("#finetune-form select[name=dataset_id] option:checked")
    expect(chosen).to_have_text("web-two-cases (2 case(s): spleen, liver, stomach, aorta)")  # picked, not pasted

    # From scratch, as a new version of the starter's name: the same organs, so it is compared with production.
    page.fill("#finetune-form input[name=name]", STARTER)
    page.fill("#finetune-form input[name=steps]", "8")
    page.fill("#finetune-form input[name=validate_every]", "2")
    options = '{"batch_size": 2, "patch": 48, "canvas": 64, "spacing": 6.0, "features": [8, 8, 16, 16, 32, 8]}'
    page.fill("#finetune-form textarea[name=options]", options)
    page.click("#finetune-form button[type=submit]")
    curve = page.locator("#curve")
    expect(curve).to_have_attribute("data-points", "1", timeout=60_000)  # the first point arrives while training
    expect(page.locator("#finetune-result")).to_contain_text("Candidate", timeout=120_000)
    points = int(curve.get_attribute("data-points") or 0)
    assert points >= 3, f"the curves should have grown as training went on, got {points} points"
    dice = page.locator("#dice-table")
    expect(dice).to_contain_text("liver")
    expect(dice).to_contain_text("(production)")
    save(page, screenshots, "fine-tuning")

    page.goto(f"{service.url}/ui/#models")
    model = page.locator(f".model[data-model='{STARTER}']")
    candidate = model.locator("tr[data-version='2']")
    expect(candidate).to_contain_text("candidate")
    candidate.get_by_role("button", name="Card").click()
    expect(page.locator("#card")).to_contain_text('"labels"')
    save(page, screenshots, "models")
    candidate.get_by_role("button", name="Promote").click()  # 8 steps from scratch: the gate must refuse
    expect(page.locator("#message")).to_contain_text("is below")
    expect(model.locator("tr[data-version='1']")).to_contain_text("production")
    page.once("dialog", lambda dialog: dialog.accept("web test: promote a poor candidate on purpose"))
    model.locator(f"#override-{STARTER}").check()
    candidate.get_by_role("button", name="Promote").click()
    expect(model.locator("tr[data-version='2']")).to_contain_text("production")
    model.get_by_role("button", name="Roll back").click()
    expect(model.locator("tr[data-version='1']")).to_contain_text("production")
    with service.client() as client:
        (listed,) = [m for m in client.get("/v1/models").json() if m["name"] == STARTER]
    assert listed["production_version"] == 1

    page.goto(f"{service.url}/ui/#jobs")
    expect(page.locator("#job-table tbody")).to_contain_text("finetune")


def test_pretrain_then_finetune_from_the_backbone(page: Page, service: Service, shared_data: Path) -> None:
    """LRC from the page: pre-train on an uploaded study, then fine-tune from the backbone it made."""
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    page.set_input_files("#file-input", str(folder / "example_ct_sm.nii.gz"))
    expect(page.locator("#upload-notes")).to_contain_text("1 series", timeout=60_000)
    page.goto(f"{service.url}/ui/#training")
    studies = page.locator("#pretrain-form select[name=study_ids] option")
    expect(studies.first).to_be_attached()
    page.click("#pretrain-form button[type=submit]")  # nothing chosen: the page says what is missing
    expect(page.locator("#message")).to_contain_text("choose the studies")

    page.select_option("#pretrain-form select[name=study_ids]", index=studies.count() - 1)
    page.fill("#pretrain-form input[name=name]", "web-backbone")
    page.fill("#pretrain-form input[name=steps]", "3")
    tiny = {"batch_size": 2, "spacing": 6.0, "canvas": 64, "view_size": 48, "features": [8, 8, 16, 16, 32, 8]}
    page.fill("#pretrain-form textarea[name=options]", json.dumps({**tiny, "momentum": 0.99}))
    page.click("#pretrain-form button[type=submit]")  # a setting for experiments: the API says so, no job
    expect(page.locator("#message")).to_contain_text("momentum: a setting for experiments, not offered by the API")
    options = {**tiny, "queue_size": 16, "regions_per_image": 4, "pixels_per_region": 4}
    page.fill("#pretrain-form textarea[name=options]", json.dumps(options))
    page.click("#pretrain-form button[type=submit]")
    expect(page.locator("#pretrain-result")).to_contain_text("Pre-trained web-backbone v1", timeout=120_000)
    assert page.locator("#pretrain-job").get_attribute("data-state") == "succeeded"
    base = page.locator("#finetune-form select[name=base_model]")
    expect(base).to_have_value("web-backbone:1")  # chosen for the next fine-tuning
    expect(base.locator("option[value='web-backbone:1']")).to_have_text("web-backbone v1 (pre-trained)")
    with service.client() as client:
        card = client.get("/v1/models/web-backbone/versions/1").json()["card"]
    assert (card["kind"], card["training"]["config"]["queue_size"]) == ("pretrained", 16)

    page.fill("#dataset-form input[name=name]", "web-one-case")
    page.fill("#dataset-form input[name=labels]", "5=liver, 1=spleen")
    page.locator(".case-image").first.set_input_files(str(folder / "example_ct_sm.nii.gz"))
    page.locator(".case-label").first.set_input_files(str(folder / "example_seg.nii.gz"))
    page.click("#dataset-form button[type=submit]")
    expect(page.locator("#dataset-result")).to_contain_text("1 case(s)", timeout=60_000)
    page.fill("#finetune-form input[name=name]", "web-from-backbone")
    page.fill("#finetune-form input[name=steps]", "4")
    page.fill("#finetune-form input[name=validate_every]", "2")
    page.fill("#finetune-form textarea[name=options]", '{"batch_size": 2, "patch": 48, "validation_fraction": 0.5}')
    page.click("#finetune-form button[type=submit]")
    expect(page.locator("#finetune-result")).to_contain_text("Candidate web-from-backbone v1", timeout=120_000)
    with service.client() as client:
        card = client.get("/v1/models/web-from-backbone/versions/1").json()["card"]
    assert (card["parent"]["kind"], Path(card["parent"]["path"]).parent.name) == ("pretrained", "web-backbone")
    assert card["training"]["config"]["backbone_lr_factor"] == 3.0  # the self-supervised base's rate


def test_viewer_key_sees_but_cannot_upload(browser: Browser, service: Service, shared_data: Path) -> None:
    tab = browser.new_page()
    tab.goto(f"{service.url}/ui/")
    tab.fill("#api-key", service.tokens["viewer"])
    tab.click("#signin-form button")
    expect(tab.locator("#who")).to_have_text("signed in")
    tab.set_input_files("#file-input", str(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct_sm.nii.gz"))
    expect(tab.locator("#message")).to_contain_text("submitter role")
    tab.goto(f"{service.url}/ui/#models")
    expect(tab.locator(".model").first).to_be_visible()
    assert tab.locator("input[id^=override-]").count() == 0  # the gate override is offered to admins only
    assert tab.get_by_role("button", name="Promote").count() == 0  # so are promotion and roll-back
    assert tab.get_by_role("button", name="Roll back").count() == 0
    tab.get_by_role("button", name="Sign out").click()
    expect(tab.locator("#signin")).to_be_visible()
    assert tab.evaluate("sessionStorage.getItem('lrc.apiKey')") is None
    tab.close()
