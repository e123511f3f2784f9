"""``POST /v1/segmentations`` with an ``Idempotency-Key``: one segmentation and one job per key and project,
the first answer for every repetition, 409 for the key with another body, racing requests included; on
SQLite and PostgreSQL, the API served over HTTP."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.services.model_versions import register_directory
from core.records.keys import create_key
from core.records.projects import DEFAULT, SHARED
from core.records.tables import Job, Segmentation
from core.settings import Settings
from tests.service.fixtures import MODEL
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service
from tests.service.helpers import multipart, series_with_uids
from tests.service.postgres import database_url

PROBLEM = "application/problem+json"
OTHER = "other-project"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The API on each database, no worker (jobs stay queued); ``MODEL`` version 1 shared by every project
    (production), version 2 the default project's; a submitter key of project ``OTHER`` too."""
    root = tmp_path_factory.mktemp(f"idempotency-{request.param}")
    with database_url(request.param) as url:
        options: dict[str, Any] = {"database_url": url} if url else {}
        settings = Settings(data_dir=root / "data", bootstrap_admin_key=ADMIN_KEY, **FAST, **options)
        with running_service(settings, (), root) as service:
            assert service.ctx.db.engine.dialect.name == request.param
            register_directory(service.ctx, MODEL, tiny_model, SHARED, status="production")
            register_directory(service.ctx, MODEL, tiny_model, DEFAULT)  # version 2, the default project's
            with service.ctx.db.session() as session:
                service.tokens[OTHER] = create_key(session, "other-submitter", "submitter", OTHER)[1]
            yield service


@pytest.fixture(scope="module")
def series(api: Service, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Two series of the default project and one of ``OTHER`` (the same files: its own study)."""
    folder = tmp_path_factory.mktemp("series")
    found: dict[str, list[str]] = {}
    for who, names in (("submitter", ("a", "b")), (OTHER, ("a",))):
        for name in names:
            files = series_with_uids(shared_data, folder / name, count=4)
            with api.client(who) as client:
                response = client.post("/v1/studies", files=multipart(files))
            assert response.status_code == 201, response.text
            found.setdefault(who, []).append(response.json()["series"][0]["id"])
    return found


def post(api: Service, who: str, body: dict[str, Any], key: str | bytes | None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    with api.client(who) as client:
        return client.post("/v1/segmentations", json=body, headers=headers)


def jobs(api: Service, project: str = "default") -> int:
    with api.ctx.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Job).where(Job.project == project)) or 0)


def test_the_same_key_again_returns_the_first_answer_and_makes_no_job(api: Service, series):
    key, body = uuid.uuid4().hex, {"series_id": series["submitter"][0], "model": f"{MODEL}:1"}
    before = jobs(api)
    first = post(api, "submitter", body, key)
    assert first.status_code == 202, first.text
    again = [post(api, "submitter", body, key) for _ in range(3)]
    assert [r.status_code for r in again] == [202] * 3
    assert all(r.json() == first.json() for r in again)  # same segmentation, job and links
    assert jobs(api) == before + 1
    with api.ctx.db.session() as session:
        seg = session.get(Segmentation, first.json()["id"])
        assert seg is not None
        assert (seg.request_key, seg.job_id) == (key, first.json()["job_id"])
    # Without a key every request is a new one: two jobs.
    plain = [post(api, "submitter", body, None).json() for _ in range(2)]
    assert plain[0]["id"] != plain[1]["id"]
    assert jobs(api) == before + 3


@pytest.mark.parametrize(
    "change", [{"series": 1}, {"model": f"{MODEL}:2"}, {"model": None}, {"model": MODEL}, {"tiles": True}], ids=str
)
def test_the_same_key_with_another_body_is_refused(api: Service, series, change: dict[str, Any]):
    key = uuid.uuid4().hex
    body = {"series_id": series["submitter"][0], "model": f"{MODEL}:1"}
    assert post(api, "submitter", body, key).status_code == 202
    before = jobs(api)
    other = {"series_id": series["submitter"][change.get("series", 0)], "model": change.get("model", body["model"])}
    other |= {"tiles": True} if "tiles" in change else {}
    refused = post(api, "submitter", other, key)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert problem["type"] == "urn:lrc:problem:idempotency-key-reused"
    assert "another request" in problem["detail"]
    assert jobs(api) == before
    assert post(api, "submitter", body, key).status_code == 202  # the first body still gets its answer


def test_a_key_belongs_to_its_project(api: Service, series):
    key = uuid.uuid4().hex
    mine = post(api, "submitter", {"series_id": series["submitter"][0]}, key)
    before = jobs(api, OTHER)
    theirs = post(api, OTHER, {"series_id": series[OTHER][0]}, key)  # another body: no 409 across projects
    assert (mine.status_code, theirs.status_code) == (202, 202), theirs.text
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["job_id"] != mine.json()["job_id"]
    assert jobs(api, OTHER) == before + 1
    assert post(api, OTHER, {"series_id": series[OTHER][0]}, key).json() == theirs.json()
    assert post(api, "submitter", {"series_id": series["submitter"][0]}, key).json() == mine.json()
    # The other project's series under this project's key is not found, not its segmentation.
    assert post(api, OTHER, {"series_id": series["submitter"][0]}, uuid.uuid4().hex).status_code == 404


@pytest.mark.parametrize("round_", range(3))
def test_racing_requests_with_one_key_make_one_job(api: Service, series, round_: int):
    key, body = uuid.uuid4().hex, {"series_id": series["submitter"][1], "model": MODEL}
    before = jobs(api)
    start = threading.Barrier(8)
    answers: list[httpx.Response] = []

    def ask() -> None:
        with api.client("submitter") as client:
            start.wait()
            answers.append(client.post("/v1/segmentations", json=body, headers={"Idempotency-Key": key}))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [r.status_code for r in answers] == [202] * 8, [r.text for r in answers]
    assert len({(r.json()["id"], r.json()["job_id"]) for r in answers}) == 1
    assert jobs(api) == before + 1


@pytest.mark.parametrize(
    ("key", "why"),
    [("k" * 201, "at most 200"), ("", "at least 1"), ("a\tb", "pattern"), ("caf\xe9".encode("latin-1"), "pattern")],
    ids=["too-long", "empty", "tab", "non-ascii"],
)
def test_a_bad_key_is_refused(api: Service, series, key: str | bytes, why: str):
    before = jobs(api)
    refused = post(api, "submitter", {"series_id": series["submitter"][0]}, key)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == PROBLEM
    assert "Idempotency-Key" in refused.json()["detail"]
    assert why in refused.json()["detail"]
    assert jobs(api) == before
    assert post(api, "submitter", {"series_id": series["submitter"][0]}, "k" * 200).status_code == 202
