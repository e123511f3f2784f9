"""Datasets, fine-tuning to a new model version, the promotion gate, roll-back and cancellation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from app.api.schemas import Stage
from app.records import registry
from app.records.projects import DEFAULT
from app.services.models import register_directory
from lrc.io import Volume, read_nifti, write_nifti
from lrc.nets.stages import DECODER_STAGES, ENCODER_STAGES
from tests.service.conftest import MODEL
from tests.service.harness import Service
from tests.service.helpers import multipart

PROBLEM = "application/problem+json"
TINY = {"steps": 4, "batch_size": 2, "patch": 48, "validate_every": 4}
TRANSFER = {
    "transfer": "encoder",
    "warmup_steps": 1,
    "backbone_lr_factor": 0.5,
    "shrink": 0.8,
    "perturb": 0.2,
    "anchor_weight": 5.0,
    "reinit": ["down_4"],
    "augment_scale": [0.8, 1.25],
    "augment_rotate": 10.0,
    "flip": True,
    "tile": 32,
}


@pytest.fixture(scope="module")
def stored_series_id(service: Service, ct_nifti: tuple[Path, Path]) -> str:
    """The small CT, uploaded as a study before the dataset refers to it."""
    with service.client("submitter") as client:
        response = client.post("/v1/studies", files=multipart([ct_nifti[0]]))
    assert response.status_code in (200, 201), response.text
    return response.json()["series"][0]["id"]


@pytest.fixture(scope="module")
def second_case(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Another real CT case: slices 20-49 of the big TotalSegmentator CT and of its label map (small, so
    that validating on it is quick)."""
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    out = tmp_path_factory.mktemp("case")
    paths = []
    for name, target in (
        ("example_ct.nii.gz", "ct_20_50.nii.gz"),
        ("example_seg_fast_force_split.nii.gz", "seg_20_50.nii.gz"),
    ):
        volume = read_nifti(folder / name)
        shift = np.eye(4)
        shift[2, 3] = 20
        paths.append(write_nifti(Volume(volume.array[:, :, 20:50].copy(), volume.affine @ shift), out / target))
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def dataset_id(
    service: Service, ct_nifti: tuple[Path, Path], second_case: tuple[Path, Path], stored_series_id: str
) -> str:
    """Two real CT cases: a stored series with its label map, and a NIfTI file sent with its own."""
    image, label = second_case
    cases = [
        {"image": {"series_id": stored_series_id}, "label": ct_nifti[1].name},
        {"image": image.name, "label": label.name},
    ]
    form = {"name": "abdomen-2", "labels": json.dumps({"5": "liver", "1": "spleen"}), "cases": json.dumps(cases)}
    with service.client("submitter") as client:
        response = client.post("/v1/datasets", data=form, files=multipart([ct_nifti[1], image, label]))
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert len(dataset["cases"]) == 2
    assert dataset["cases"][0]["series_id"] == stored_series_id
    with service.client("viewer") as client:
        assert client.get(f"/v1/datasets/{dataset['id']}").json()["labels"] == {"5": "liver", "1": "spleen"}
    return dataset["id"]


def test_label_geometry_is_checked_on_arrival(service: Service, shared_data: Path, stored_series_id: str):
    label = shared_data / "nifti" / "totalseg_ct_abdomen" / "example_seg_fast_force_split.nii.gz"  # of the big CT
    cases = [{"image": {"series_id": stored_series_id}, "label": label.name}]
    form = {"name": "wrong", "labels": json.dumps({"5": "liver"}), "cases": json.dumps(cases)}
    with service.client("submitter") as client:
        response = client.post("/v1/datasets", data=form, files=multipart([label]))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    detail = response.json()["detail"]
    assert "(122, 101, 112)" in detail
    assert "(122, 101, 30)" in detail


@pytest.mark.parametrize(
    ("form", "needle"),
    [
        ({"name": "x", "labels": "{}", "cases": "[]"}, "at least one label"),
        (
            {"name": "x", "labels": '{"5": "liver"}', "cases": '[{"image": "a.nii.gz", "label": "b.nii.gz"}]'},
            "a.nii.gz",
        ),
        ({"name": "x"}, "form fields missing"),
    ],
)
def test_bad_dataset_requests(service: Service, form, needle):
    with service.client("submitter") as client:
        response = client.post("/v1/datasets", data=form, files=[("files", ("z.txt", b"z", "text/plain"))])
    assert response.status_code == 422
    assert needle in response.json()["detail"]


def test_finetune_makes_a_candidate_then_gate_and_rollback(service: Service, dataset_id: str):
    with service.client("submitter") as client:
        response = client.post(
            "/v1/finetunes",
            json={"dataset_id": dataset_id, "base_model": f"{MODEL}:1", "options": {**TINY, **TRANSFER}},
        )
        assert response.status_code == 202, response.text
        job = service.wait_job(response.json()["job_id"], timeout=180)
        assert job["state"] == "succeeded", job
        assert job["result"]["model"] == MODEL
        assert job["progress"]["metrics"]["steps"] == 4
        version = job["result"]["version"]
        card = client.get(f"/v1/models/{MODEL}/versions/{version}").json()
        assert card["status"] == "candidate"
        assert 0.0 <= card["held_out_mean_dice"] <= 1.0
        assert card["card"]["metrics"]["cases"] == 1
        assert card["card"]["parent"] is not None
        assert {k: card["card"]["training"]["config"][k] for k in TRANSFER} == TRANSFER  # reached the training
        assert card["card"]["inference_tile"] == 32
        comparison = card["comparison"]
        assert comparison["production_version"] == 1
        assert comparison["cases"] == 1
        assert 0.0 <= comparison["production_score"] <= 1.0

        refused = client.post(f"/v1/models/{MODEL}/versions/{version}/promote", json={})
        assert refused.status_code == 403  # only admins promote
        assert "admin" in refused.json()["detail"]
    with service.client("admin") as admin:
        promoted = admin.post(f"/v1/models/{MODEL}/versions/{version}/promote", json={})
        if comparison["candidate_score"] >= comparison["production_score"]:
            assert promoted.status_code == 200, promoted.text
        else:
            assert promoted.status_code == 409
            assert "below" in promoted.json()["detail"]
            forced = admin.post(
                f"/v1/models/{MODEL}/versions/{version}/promote", json={"override": True, "reason": "test"}
            )
            assert forced.status_code == 200
            assert forced.json()["override"] is True
        models = {m["name"]: m for m in admin.get("/v1/models").json()}
        assert models[MODEL]["production_version"] == version
        rolled = admin.post(f"/v1/models/{MODEL}/rollback", json={"reason": "back to v1"})
        assert rolled.status_code == 200, rolled.text
        assert {m["name"]: m for m in admin.get("/v1/models").json()}[MODEL]["production_version"] == 1


def test_gate_refuses_a_worse_or_uncompared_candidate(service: Service, tiny_model: Path):
    with service.ctx.db.session() as session:
        current = registry.production(session, DEFAULT, MODEL)
        assert current is not None
        card = json.loads((tiny_model / "model.json").read_text())
        worse = registry.register(
            session,
            MODEL,
            str(tiny_model),
            card,
            DEFAULT,
            comparison={"production_id": current.id, "candidate_score": 0.2, "production_score": 0.5, "cases": 3},
        )
        stale = registry.register(
            session, MODEL, str(tiny_model), card, DEFAULT, comparison={"production_id": "someone-else"}
        )
    with service.client("admin") as admin:
        refused = admin.post(f"/v1/models/{MODEL}/versions/{worse.version}/promote", json={})
        assert refused.status_code == 409
        assert refused.headers["content-type"] == PROBLEM
        assert "0.2000" in refused.json()["detail"]
        assert "0.5000" in refused.json()["detail"]
        uncompared = admin.post(f"/v1/models/{MODEL}/versions/{stale.version}/promote", json={})
        assert uncompared.status_code == 409
        assert "not compared" in uncompared.json()["detail"]
        forced = admin.post(f"/v1/models/{MODEL}/versions/{worse.version}/promote", json={"override": True})
        assert forced.status_code == 200
        assert forced.json()["override"] is True
        assert "below" in forced.json()["reason"]
        assert admin.post(f"/v1/models/{MODEL}/rollback", json={}).status_code == 200
    with service.ctx.db.session() as session:
        history = registry.history(session, DEFAULT, MODEL)
        assert history[-2].override is True
        assert history[-1].action == "rollback"
        assert registry.production(session, DEFAULT, MODEL).id == current.id


def test_cancel_a_running_finetune(service: Service, dataset_id: str):
    long = {**TINY, "steps": 5000, "validate_every": 5000}
    with service.client("submitter") as client:
        job_id = client.post("/v1/finetunes", json={"dataset_id": dataset_id, "options": long, "name": "cancel-me"})
        job_id = job_id.json()["job_id"]
        deadline = time.monotonic() + 120
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] == "running" and job["progress"]["metrics"].get("step", 0) >= 2:
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        cancelled = client.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        step = client.get(f"/v1/jobs/{job_id}").json()["progress"]["metrics"]["step"]
        time.sleep(3)  # the worker stops at its next progress report
        after = client.get(f"/v1/jobs/{job_id}").json()
        assert after["state"] == "cancelled"
        assert after["progress"]["metrics"]["step"] <= step + 1
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 409
        assert "cancel-me" not in {m["name"] for m in client.get("/v1/models").json()}


def test_pretrain_registers_a_backbone_that_cannot_be_promoted(service: Service, stored_series_id: str):
    options = {
        "steps": 2,
        "batch_size": 2,
        "spacing": 6.0,
        "canvas": 64,
        "view_size": 48,
        "features": [8, 8, 16, 16, 32, 8],
        "queue_size": 16,
        "regions_per_image": 4,
        "pixels_per_region": 4,
        "decorrelation_weight": 0.5,
        "local_negatives": "image",
        "negative_margin": 0.05,
        "momentum": 0.99,
        "superpixel_scale": 200.0,
    }
    body = {"series_ids": [stored_series_id], "method": "moco+lrc", "name": "backbone", "options": options}
    with service.client("submitter") as client:
        accepted = client.post("/v1/pretrains", json=body)
        assert accepted.status_code == 202, accepted.text
        job = service.wait_job(accepted.json()["job_id"], timeout=180)
        assert job["state"] == "succeeded", job
        card = client.get("/v1/models/backbone/versions/1").json()
        assert card["kind"] == "pretrained"
        assert card["card"]["training"]["method"] == "moco+lrc"
        config = card["card"]["training"]["config"]
        reached = (config["decorrelation_weight"], config["local_negatives"], config["negative_margin"])
        reached += (config["momentum"], config["superpixels"]["scale"])
        assert reached == (0.5, "image", 0.05, 0.99, 200.0)  # reached the training
    with service.client("admin") as admin:
        refused = admin.post("/v1/models/backbone/versions/1/promote", json={})
        assert refused.status_code == 409
        assert "cannot segment" in refused.json()["detail"]
    with service.client("submitter") as client:
        unknown = client.post("/v1/pretrains", json={"series_ids": ["nope"]})
        assert unknown.status_code == 404


def test_dataset_with_a_dicom_seg_label(service: Service, shared_data: Path):
    """dcmqi's hand-made liver SEG on its 3 CT slices: the SEG is read onto the stored series."""
    folder = shared_data / "dicom" / "seg_dcmqi"
    with service.client("submitter") as client:
        study = client.post("/v1/studies", files=multipart(sorted((folder / "ct-3slice").glob("*.dcm"))))
        assert study.status_code in (200, 201), study.text
        series_id = study.json()["series"][0]["id"]
        cases = [{"image": {"series_id": series_id}, "label": "liver.dcm"}]
        form = {"name": "dcmqi-liver", "labels": json.dumps({"1": "liver"}), "cases": json.dumps(cases)}
        response = client.post("/v1/datasets", data=form, files=multipart([folder / "liver.dcm"]))
    assert response.status_code == 201, response.text
    assert response.json()["cases"] == [{"series_id": series_id, "label": "liver.dcm"}]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"warmup_steps": 4}, "warmup_steps must be in [0, steps), got 4 for 4 steps"),
        ({"transfer": "decoder"}, "transfer"),
        ({"backbone_lr_factor": -1}, "backbone_lr_factor"),
        ({"shrink": 0}, "shrink"),
        ({"perturb": -0.5}, "perturb"),
        ({"anchor_weight": 500}, "anchor_weight 500 x the transferred layers' rate 0.003 exceeds 1"),
        ({"reinit": ["down_5"]}, "reinit"),
        ({"augment_scale": [1.4, 0.7]}, "augment_scale must be 0 < min <= max <= 4"),
        ({"augment_scale": [1.0, 5.0]}, "augment_scale must be 0 < min <= max <= 4"),
        ({"reinit": list(get_args(Stage))}, "leaves nothing to transfer"),
        ({"transfer": "encoder", "reinit": list(ENCODER_STAGES)}, "leaves nothing to transfer"),
        ({"patch": 64, "canvas": 32}, "patch <= canvas"),
        ({"augment_scale": [0.7]}, "augment_scale"),
        ({"augment_rotate": 200}, "augment_rotate"),
        ({"spatial_dims": 3, "augment_rotate": 10}, "2D only"),
        ({"tile": 40}, "multiple of 16"),
        ({"tile": "tiles"}, "tile"),
        ({"spatial_dims": 3, "tile": "patch"}, "tile is 2D only"),
    ],
)
def test_bad_transfer_options_refused_before_a_job(service: Service, dataset_id: str, options, needle):
    with service.client("submitter") as client:
        before = len(client.get("/v1/jobs", params={"limit": 500}).json())
        response = client.post("/v1/finetunes", json={"dataset_id": dataset_id, "options": {**TINY, **options}})
        assert response.status_code == 422, response.text
        assert needle in response.text
        assert len(client.get("/v1/jobs", params={"limit": 500}).json()) == before


def test_the_api_names_the_networks_stages():
    """The reinit option's choices (an enumeration in the API's schema) are the U-Net's stages."""
    assert get_args(Stage) == ENCODER_STAGES + DECODER_STAGES


def test_a_model_named_after_its_dataset_stays_in_the_model_folder(
    service: Service, ct_nifti: tuple[Path, Path], stored_series_id: str
):
    """Without 'name' or a base model, the model is named after its dataset, whose name is free text:
    "../../../escape" must neither lead the model's files out of the model folder nor make a name that
    'name:version' cannot address."""
    cases = [{"image": {"series_id": stored_series_id}, "label": ct_nifti[1].name}]
    form = {"name": "../../../escape", "labels": json.dumps({"5": "liver", "1": "spleen"}), "cases": json.dumps(cases)}
    with service.client("submitter") as client:
        created = client.post("/v1/datasets", data=form, files=multipart([ct_nifti[1]]))
        assert created.status_code == 201, created.text
        accepted = client.post("/v1/finetunes", json={"dataset_id": created.json()["id"], "options": TINY})
        assert accepted.status_code == 202, accepted.text
        job = service.wait_job(accepted.json()["job_id"], timeout=180)
        assert job["state"] == "succeeded", job
        assert job["result"]["model"] == "escape"
        version = job["result"]["version"]
        assert client.get(f"/v1/models/escape/versions/{version}").status_code == 200
    with service.ctx.db.session() as session:
        registered = registry.resolve(session, DEFAULT, f"escape:{version}")
        path = Path(registered.path).resolve()
    assert path.is_relative_to((service.settings.model_dir / "projects" / DEFAULT).resolve())
    assert (path / "model.json").is_file()


def test_a_base_model_whose_name_is_no_model_name_needs_a_name(service: Service, dataset_id: str, tiny_model: Path):
    """Fine-tuned versions go under the base model's name when no 'name' is given; a name registered from
    the command line that the API would refuse ('Liver CT') is asked for instead of used (before a job)."""
    register_directory(service.ctx, "Liver CT", tiny_model, DEFAULT)
    with service.client("submitter") as client:
        before = len(client.get("/v1/jobs", params={"limit": 500}).json())
        body = {"dataset_id": dataset_id, "base_model": "Liver CT:1", "options": TINY}
        response = client.post("/v1/finetunes", json=body)
        assert response.status_code == 422, response.text
        assert "give 'name'" in response.json()["detail"]
        assert len(client.get("/v1/jobs", params={"limit": 500}).json()) == before
