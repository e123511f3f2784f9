"""Projects are isolated: a key of project beta (an admin, so that no role explains a refusal) gets 404 for
every object of project alpha, on every route of the API, and lists show it nothing of alpha's.

The routes are walked from the application itself: a route added without a case here fails
:func:`test_every_route_has_a_case`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app.api.router import api_router
from core.records.tables import Job, ModelVersion, ResultInstance, Segmentation
from tests.security.conftest import ALPHA_MODEL, LABELS, SHARED_MODEL, TINY, World
from tests.service.helpers import multipart

PROBLEM = "application/problem+json"
# Routes that hold no records: health and monitoring (aggregate counts only), the page's static files, the docs.
PUBLIC = {
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /",
    "GET /ui/{path:path}",
    "GET /openapi.json",
    "GET /docs",
    "GET /docs/assets/{name}",
}


def routes(app: FastAPI) -> set[str]:
    """``METHOD /path`` of every route of ``app`` (HEAD aside: Starlette adds it to each GET)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD":
                found.add(f"{method} {route.path}")
    return found


def _bare_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)  # as the service: its docs are app.web.docs, in PUBLIC
    app.include_router(api_router)
    return app


def hidden(response: httpx.Response) -> None:
    """Refused as if the object did not exist."""
    assert response.status_code == 404, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"] == PROBLEM


def lists_nothing_of_alpha(world: World, beta: httpx.Client, url: str, needles: list[str], **params: str) -> None:
    """Beta's list answers 200 without any of ``needles``; alpha's holds them (so that this can fail)."""
    mine = beta.get(url, params=params)
    assert mine.status_code == 200, mine.text
    assert not [n for n in needles if n in mine.text], mine.text
    with world.client("alpha-admin") as alpha:
        theirs = alpha.get(url, params=params)
    assert theirs.status_code == 200
    assert all(n in theirs.text for n in needles), (url, theirs.text)


def beta_series(world: World, beta: httpx.Client) -> str:
    """Beta's own copy of the same DICOM files (201 the first time, 200 after): its series id."""
    response = beta.post("/v1/studies", files=multipart(world.dicom))
    assert response.status_code in (200, 201), response.text
    assert response.json()["id"] != world.ids["study"]
    series_id: str = response.json()["series"][0]["id"]
    return series_id


def stow_body(world: World) -> tuple[bytes, str]:
    """Alpha's DICOM files as a STOW-RS multipart/related body, and its content type."""
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p.read_bytes() for p in world.dicom]
    body = b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def _upload(world: World, beta: httpx.Client) -> None:
    # The same files as alpha's study: a new study of beta's, never alpha's (uploads are deduplicated per project).
    response = beta.post("/v1/studies", files=multipart(world.dicom))
    assert response.status_code in (200, 201), response.text
    assert response.json()["id"] != world.ids["study"]


def _delete_study(world: World, beta: httpx.Client) -> None:
    hidden(beta.delete(f"/v1/studies/{world.ids['study']}"))
    with world.client("alpha-viewer") as alpha:
        assert alpha.get(f"/v1/studies/{world.ids['study']}").status_code == 200


def _segment(world: World, beta: httpx.Client) -> None:
    hidden(beta.post("/v1/segmentations", json={"series_id": world.ids["series"], "model": SHARED_MODEL}))
    own = beta_series(world, beta)
    hidden(beta.post("/v1/segmentations", json={"series_id": own, "model": ALPHA_MODEL}))
    hidden(beta.post("/v1/segmentations", json={"series_id": own, "model": f"{SHARED_MODEL}:2"}))  # alpha's version


def _result(world: World, beta: httpx.Client) -> None:
    for fmt in ("nifti", "dicom-seg", "rtstruct"):
        hidden(beta.get(f"/v1/segmentations/{world.ids['segmentation']}/result", params={"format": fmt}))


def _jobs(world: World, beta: httpx.Client, suffix: str = "", method: str = "GET") -> None:
    for job in ("job", "export_job", "finetune_job"):
        hidden(beta.request(method, f"/v1/jobs/{world.ids[job]}{suffix}"))


def _dataset(world: World, beta: httpx.Client) -> None:
    label = world.ct[1]
    form = {
        "name": "steal",
        "labels": json.dumps({str(k): v for k, v in LABELS.items()}),
        "cases": json.dumps([{"image": {"series_id": world.ids["dataset_series"]}, "label": label.name}]),
    }
    hidden(beta.post("/v1/datasets", data=form, files=multipart([label])))


def _finetune(world: World, beta: httpx.Client) -> None:
    hidden(beta.post("/v1/finetunes", json={"dataset_id": world.ids["dataset"], "options": TINY}))
    form = {
        "name": "beta-set",
        "labels": json.dumps({str(k): v for k, v in LABELS.items()}),
        "cases": json.dumps([{"image": world.ct[0].name, "label": world.ct[1].name}]),
    }
    own = beta.post("/v1/datasets", data=form, files=multipart(list(world.ct)))
    assert own.status_code == 201, own.text
    for base in (ALPHA_MODEL, f"{SHARED_MODEL}:2"):
        body = {"dataset_id": own.json()["id"], "base_model": base, "options": TINY}
        hidden(beta.post("/v1/finetunes", json=body))


def _pretrain(world: World, beta: httpx.Client) -> None:
    hidden(beta.post("/v1/pretrains", json={"series_ids": [world.ids["series"]], "name": "steal"}))
    hidden(beta.post("/v1/pretrains", json={"study_ids": [world.ids["study"]], "name": "steal"}))


def _models(world: World, beta: httpx.Client) -> None:
    listed = beta.get("/v1/models")
    assert listed.status_code == 200
    models = {m["name"]: m for m in listed.json()}
    assert ALPHA_MODEL not in models
    assert [v["version"] for v in models[SHARED_MODEL]["versions"]] == [1]  # alpha's version 2 is alpha's
    assert models[SHARED_MODEL]["versions"][0]["shared"] is True
    with world.client("alpha-viewer") as alpha:
        theirs = {m["name"]: m for m in alpha.get("/v1/models").json()}
    assert ALPHA_MODEL in theirs
    assert [v["version"] for v in theirs[SHARED_MODEL]["versions"]] == [1, 2]


def _card(world: World, beta: httpx.Client) -> None:
    hidden(beta.get(f"/v1/models/{ALPHA_MODEL}/versions/1"))
    hidden(beta.get(f"/v1/models/{SHARED_MODEL}/versions/2"))
    assert beta.get(f"/v1/models/{SHARED_MODEL}/versions/1").json()["status"] == "production"  # shared: visible


def _promote(world: World, beta: httpx.Client) -> None:
    hidden(beta.post(f"/v1/models/{ALPHA_MODEL}/versions/1/promote", json={"override": True}))
    hidden(beta.post(f"/v1/models/{SHARED_MODEL}/versions/2/promote", json={"override": True}))


def _create_key(world: World, beta: httpx.Client) -> None:
    created = beta.post("/v1/keys", json={"name": "beta-script", "role": "admin"})
    assert created.status_code == 201, created.text
    assert created.json()["project"] == "beta"
    with httpx.Client(
        base_url=world.service.url, headers={"Authorization": f"Bearer {created.json()['token']}"}
    ) as new:
        hidden(new.get(f"/v1/studies/{world.ids['study']}"))
        assert not [k for k in new.get("/v1/keys").json() if k["project"] != "beta"]


def _revoke_key(world: World, beta: httpx.Client) -> None:
    with world.client("alpha-admin") as alpha:
        theirs = {k["name"]: k["id"] for k in alpha.get("/v1/keys").json()}
    hidden(beta.delete(f"/v1/keys/{theirs['alpha-viewer']}"))
    with world.client("alpha-viewer") as alpha:
        assert alpha.get("/v1/studies").status_code == 200  # still works


def _stow(world: World, beta: httpx.Client) -> None:
    body, content_type = stow_body(world)
    stored = beta.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200, stored.text
    assert stored.headers["location"] != f"/v1/studies/{world.ids['study']}"
    assert beta.get("/dicomweb/instances").json() == []  # storing the sources does not reveal alpha's results


def _qido(url: str) -> Callable[[World, httpx.Client], None]:
    def check(world: World, beta: httpx.Client) -> None:
        path = url.format(**world.ids)
        assert beta.get(path).json() == []
        assert beta.get(path, params={"StudyInstanceUID": world.ids["study_uid"]}).json() == []
        lists_nothing_of_alpha(world, beta, path, [world.ids["study_uid"]])

    return check


def _get(url: str) -> Callable[[World, httpx.Client], None]:
    def check(world: World, beta: httpx.Client) -> None:
        hidden(beta.get(url.format(**world.ids)))

    return check


# DICOMweb paths to alpha's produced study, series and instance (filled in from World.ids).
STUDY = "/dicomweb/studies/{study_uid}"
SERIES = STUDY + "/series/{seg_series_uid}"
SOP = SERIES + "/instances/{sop}"
CASES: dict[str, Callable[[World, httpx.Client], None]] = {
    "POST /v1/studies": _upload,
    "GET /v1/studies": lambda w, b: lists_nothing_of_alpha(w, b, "/v1/studies", [w.ids["study"]]),
    "GET /v1/studies/{study_id}": _get("/v1/studies/{study}"),
    "DELETE /v1/studies/{study_id}": _delete_study,
    "POST /v1/segmentations": _segment,
    "GET /v1/segmentations/{segmentation_id}": _get("/v1/segmentations/{segmentation}"),
    "GET /v1/segmentations/{segmentation_id}/result": _result,
    "GET /v1/jobs": lambda w, b: lists_nothing_of_alpha(
        w, b, "/v1/jobs", [w.ids["job"], w.ids["export_job"], w.ids["finetune_job"]]
    ),
    "GET /v1/jobs/{job_id}": _jobs,
    "GET /v1/jobs/{job_id}/events": lambda w, b: _jobs(w, b, "/events"),
    "DELETE /v1/jobs/{job_id}": lambda w, b: _jobs(w, b, method="DELETE"),
    "POST /v1/datasets": _dataset,
    "GET /v1/datasets": lambda w, b: lists_nothing_of_alpha(w, b, "/v1/datasets", [w.ids["dataset"]]),
    "GET /v1/datasets/{dataset_id}": _get("/v1/datasets/{dataset}"),
    "POST /v1/finetunes": _finetune,
    "POST /v1/pretrains": _pretrain,
    "GET /v1/models": _models,
    "GET /v1/models/{name}/versions/{version}": _card,
    "POST /v1/models/{name}/versions/{version}/promote": _promote,
    "POST /v1/models/{name}/rollback": lambda w, b: hidden(b.post(f"/v1/models/{ALPHA_MODEL}/rollback", json={})),
    "POST /v1/keys": _create_key,
    "GET /v1/keys": lambda w, b: lists_nothing_of_alpha(w, b, "/v1/keys", ["alpha-viewer", "alpha-admin"]),
    "DELETE /v1/keys/{key_id}": _revoke_key,
    "POST /dicomweb/studies": _stow,
    "GET /dicomweb/studies": _qido("/dicomweb/studies"),
    "GET /dicomweb/series": _qido("/dicomweb/series"),
    "GET /dicomweb/instances": _qido("/dicomweb/instances"),
    "GET /dicomweb/studies/{study}/series": _qido(STUDY + "/series"),
    "GET /dicomweb/studies/{study}/instances": _qido(STUDY + "/instances"),
    "GET /dicomweb/studies/{study}/series/{series}/instances": _qido(SERIES + "/instances"),
    "GET /dicomweb/studies/{study}": _get(STUDY),
    "GET /dicomweb/studies/{study}/series/{series}": _get(SERIES),
    "GET /dicomweb/studies/{study}/series/{series}/instances/{sop}": _get(SOP),
    "GET /dicomweb/studies/{study}/metadata": _get(STUDY + "/metadata"),
    "GET /dicomweb/studies/{study}/series/{series}/metadata": _get(SERIES + "/metadata"),
    "GET /dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata": _get(SOP + "/metadata"),
    "GET /ui/api/series/{series_id}/image": _get("/ui/api/series/{series}/image"),
}


def test_every_route_has_a_case(world: World) -> None:
    served = routes(world.app)
    assert served - PUBLIC - set(CASES) == set(), "routes without a cross-project case: add one to CASES"
    assert set(CASES) - served == set(), "cases for routes that no longer exist"


@pytest.mark.parametrize("route", sorted(routes(_bare_app()) - PUBLIC))
def test_other_projects_objects_are_not_found(world: World, route: str) -> None:
    assert route in CASES, f"{route} has no cross-project case"
    with world.client("beta-admin") as beta:
        CASES[route](world, beta)


def test_alpha_still_sees_its_own(world: World) -> None:
    """The walk above did not remove or change anything of alpha's."""
    with world.client("alpha-viewer") as alpha:
        assert alpha.get(f"/v1/studies/{world.ids['study']}").status_code == 200
        assert alpha.get(f"/v1/segmentations/{world.ids['segmentation']}/result").status_code == 200
        assert alpha.get(f"/v1/jobs/{world.ids['job']}").json()["state"] == "succeeded"
        assert alpha.get(f"/v1/datasets/{world.ids['dataset']}").status_code == 200
        assert alpha.get(f"/dicomweb/studies/{world.ids['study_uid']}/metadata").status_code == 200
        assert alpha.get(f"/ui/api/series/{world.ids['series']}/image").status_code == 200
        models = {m["name"]: m for m in alpha.get("/v1/models").json()}
    assert models[ALPHA_MODEL]["production_version"] == 1


def test_workers_keep_the_project(world: World) -> None:
    """Segment and export jobs, their results and DICOM instances, and the fine-tuned version are alpha's."""
    with world.service.ctx.db.session() as session:
        jobs = [session.get(Job, world.ids[k]) for k in ("job", "export_job", "finetune_job")]
        assert [j.project for j in jobs if j is not None] == ["alpha"] * 3
        segmentation = session.get(Segmentation, world.ids["segmentation"])
        assert segmentation is not None
        assert segmentation.project == "alpha"
        instances = session.query(ResultInstance).filter_by(segmentation_id=world.ids["segmentation"]).all()
        assert len(instances) == 2
        assert {i.project for i in instances} == {"alpha"}
        tuned = session.query(ModelVersion).filter_by(name=SHARED_MODEL, version=2).one()
        assert tuned.project == "alpha"
        assert tuned.comparison["production_version"] == 1  # compared with the shared production version


def test_a_project_puts_its_own_version_in_front_of_the_shared_one(world: World) -> None:
    """Alpha promotes its fine-tuned version of the shared model: alpha segments with it by default, beta
    still sees the shared one; rolling back brings the shared one back for alpha."""

    def production(who: str) -> int:
        with world.client(who) as client:
            return {m["name"]: m for m in client.get("/v1/models").json()}[SHARED_MODEL]["production_version"]

    with world.client("alpha-admin") as admin:
        promoted = admin.post(f"/v1/models/{SHARED_MODEL}/versions/2/promote", json={"override": True})
        assert promoted.status_code == 200, promoted.text
        try:
            assert (production("alpha-viewer"), production("beta-viewer")) == (2, 1)
            shared = admin.get(f"/v1/models/{SHARED_MODEL}/versions/1").json()
            assert shared["status"] == "archived"  # as alpha sees it
        finally:
            rolled = admin.post(f"/v1/models/{SHARED_MODEL}/rollback", json={"reason": "back to the shared one"})
        assert rolled.status_code == 200, rolled.text
    assert (production("alpha-viewer"), production("beta-viewer")) == (1, 1)


def test_deleting_a_copy_keeps_the_other_projects_files(world: World) -> None:
    """Files are stored once by content, whatever project sent them: beta deleting its copy of alpha's
    files removes nothing alpha still uses."""
    with world.client("beta-submitter") as beta:
        copy = beta.post("/v1/studies", files=multipart(world.dicom))
        assert copy.status_code in (200, 201), copy.text
        assert beta.delete(f"/v1/studies/{copy.json()['id']}").status_code == 204
    with world.client("alpha-viewer") as alpha:
        image = alpha.get(f"/ui/api/series/{world.ids['series']}/image")
        assert image.status_code == 200, image.text
        assert len(image.content) > 64 * 64 * 12
