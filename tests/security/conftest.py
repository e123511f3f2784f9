"""Fixtures of the security tests: a running service (SQLite, then PostgreSQL) in which project ``alpha``
owns one of everything (a DICOM study, a segmentation with its DICOM SEG and RTSTRUCT, a dataset, a model
and a fine-tuned version, jobs), and keys of every role in ``alpha`` and ``beta``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.services.model_versions import register_directory
from core.records.keys import ROLES, create_key
from core.records.projects import SHARED
from core.settings import Settings
from tests.service.fixtures import LABELS
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service
from tests.service.helpers import multipart, series_with_uids
from tests.service.postgres import database_url

PROJECTS = ("alpha", "beta")
ALPHA_MODEL = "alpha-model"
SHARED_MODEL = "shared-model"
TINY = {"steps": 2, "batch_size": 2, "patch": 48, "validate_every": 2, "spacing": 6.0, "canvas": 64}


@dataclass
class World:
    """The service, keys by ``project-role``, and the ids of alpha's objects."""

    service: Service
    tokens: dict[str, str]
    ct: tuple[Path, Path]  # a real CT and its label map (NIfTI)
    ids: dict[str, Any] = field(default_factory=dict)
    dicom: list[Path] = field(default_factory=list)  # the files of alpha's DICOM study

    def client(self, who: str) -> httpx.Client:
        """A client with the key ``who`` (``alpha-viewer``, ``beta-admin``, ...; ``none``: no key)."""
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who != "none" else {}
        return httpx.Client(base_url=self.service.url, headers=headers, timeout=60)

    @property
    def app(self) -> FastAPI:
        """The application the service runs (its routes are what the tests walk)."""
        app = self.service.server.config.app
        assert isinstance(app, FastAPI)
        return app


def _wait(world: World, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with world.client("alpha-viewer") as client:
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.3)


def _populate(world: World, shared_data: Path, ct: tuple[Path, Path], folder: Path) -> None:
    """Alpha's objects, made through the API as users make them (real worker for the jobs)."""
    ids = world.ids
    world.dicom = series_with_uids(shared_data, folder / "series")
    with world.client("alpha-submitter") as client:
        study = client.post("/v1/studies", files=multipart(world.dicom))
        assert study.status_code == 201, study.text
        ids["study"], ids["series"] = study.json()["id"], study.json()["series"][0]["id"]
        segmentation = client.post("/v1/segmentations", json={"series_id": ids["series"], "model": ALPHA_MODEL})
        assert segmentation.status_code == 202, segmentation.text
        ids["segmentation"], ids["job"] = segmentation.json()["id"], segmentation.json()["job_id"]
        assert _wait(world, ids["job"])["state"] == "succeeded"
        ids["export_job"] = client.get(f"/v1/segmentations/{ids['segmentation']}").json()["export_job_id"]
        assert _wait(world, ids["export_job"])["state"] == "succeeded"
        [instance] = client.get("/dicomweb/instances", params={"Modality": "SEG"}).json()
        ids["study_uid"] = instance["0020000D"]["Value"][0]
        ids["seg_series_uid"] = instance["0020000E"]["Value"][0]
        ids["sop"] = instance["00080018"]["Value"][0]
        form = {
            "name": "alpha-set",
            "labels": json.dumps({str(k): v for k, v in LABELS.items()}),
            "cases": json.dumps([{"image": ct[0].name, "label": ct[1].name}]),
        }
        dataset = client.post("/v1/datasets", data=form, files=multipart(list(ct)))
        assert dataset.status_code == 201, dataset.text
        ids["dataset"] = dataset.json()["id"]
        ids["dataset_series"] = dataset.json()["cases"][0]["series_id"]
        # A version of the shared model's name, trained in alpha: alpha's own, in front of the shared one.
        body = {"dataset_id": ids["dataset"], "base_model": SHARED_MODEL, "name": SHARED_MODEL, "options": TINY}
        finetune = client.post("/v1/finetunes", json=body)
        assert finetune.status_code == 202, finetune.text
        ids["finetune_job"] = finetune.json()["job_id"]
        job = _wait(world, ids["finetune_job"])
        assert job["state"] == "succeeded", job
        assert (job["result"]["model"], job["result"]["version"]) == (SHARED_MODEL, 2)


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest,
    tiny_model: Path,
    ct_nifti: tuple[Path, Path],
    shared_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """The service on each real database, with alpha's objects."""
    root = tmp_path_factory.mktemp(f"security-{request.param}")
    with database_url(request.param) as url:
        options: dict[str, Any] = {"database_url": url} if url else {}
        settings = Settings(data_dir=root / "data", bootstrap_admin_key=ADMIN_KEY, **FAST, **options)
        with running_service(settings, (("all", "infer,io,train"),), root) as service:
            tokens = {"default-admin": ADMIN_KEY}
            with service.ctx.db.session() as session:
                for project in PROJECTS:
                    for role in ROLES:
                        tokens[f"{project}-{role}"] = create_key(session, f"{project}-{role}", role, project)[1]
            register_directory(service.ctx, ALPHA_MODEL, tiny_model, "alpha", status="production")
            register_directory(service.ctx, SHARED_MODEL, tiny_model, SHARED, status="production")
            world = World(service, tokens, ct_nifti)
            _populate(world, shared_data, ct_nifti, root)
            yield world
