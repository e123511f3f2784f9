"""Keys and roles on every route: no key or an unknown one gets 401, a role below the route's gets 403
(viewers read, submitters upload, segment and train, admins promote, roll back and manage keys), and
the route's own role gets past the check. Shared models are read-only even for admins."""

from __future__ import annotations

import pytest

from core.records.keys import ROLES
from tests.security.conftest import SHARED_MODEL, World
from tests.security.test_projects import PUBLIC, _bare_app, routes

# The least role of each route; the request is made with ids that exist nowhere and no body.
NEEDS = {
    "POST /v1/studies": "submitter",
    "GET /v1/studies": "viewer",
    "GET /v1/studies/{study_id}": "viewer",
    "DELETE /v1/studies/{study_id}": "submitter",
    "POST /v1/segmentations": "submitter",
    "GET /v1/segmentations/{segmentation_id}": "viewer",
    "GET /v1/segmentations/{segmentation_id}/result": "viewer",
    "GET /v1/jobs": "viewer",
    "GET /v1/jobs/{job_id}": "viewer",
    "GET /v1/jobs/{job_id}/events": "viewer",
    "DELETE /v1/jobs/{job_id}": "submitter",
    "POST /v1/datasets": "submitter",
    "GET /v1/datasets": "viewer",
    "GET /v1/datasets/{dataset_id}": "viewer",
    "POST /v1/finetunes": "submitter",
    "POST /v1/pretrains": "submitter",
    "GET /v1/models": "viewer",
    "GET /v1/models/{name}/versions/{version}": "viewer",
    "POST /v1/models/{name}/versions/{version}/promote": "admin",
    "POST /v1/models/{name}/rollback": "admin",
    "POST /v1/keys": "admin",
    "GET /v1/keys": "admin",
    "DELETE /v1/keys/{key_id}": "admin",
    "POST /dicomweb/studies": "submitter",
    "GET /dicomweb/studies": "viewer",
    "GET /dicomweb/series": "viewer",
    "GET /dicomweb/instances": "viewer",
    "GET /dicomweb/studies/{study}/series": "viewer",
    "GET /dicomweb/studies/{study}/instances": "viewer",
    "GET /dicomweb/studies/{study}/series/{series}/instances": "viewer",
    "GET /dicomweb/studies/{study}": "viewer",
    "GET /dicomweb/studies/{study}/series/{series}": "viewer",
    "GET /dicomweb/studies/{study}/series/{series}/instances/{sop}": "viewer",
    "GET /dicomweb/studies/{study}/metadata": "viewer",
    "GET /dicomweb/studies/{study}/series/{series}/metadata": "viewer",
    "GET /dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata": "viewer",
    "GET /ui/api/series/{series_id}/image": "viewer",
}
ROUTES = sorted(routes(_bare_app()) - PUBLIC)


def request(route: str) -> tuple[str, str]:
    """Method and a concrete path: every ``{parameter}`` is an id that exists nowhere (``1`` for numbers)."""
    method, path = route.split(" ", 1)
    path = path.replace("{version}", "1")
    while "{" in path:
        start = path.index("{")
        path = path[:start] + "nothing-here" + path[path.index("}", start) + 1 :]
    return method, path


def test_every_route_has_a_role(world: World) -> None:
    assert set(NEEDS) == routes(world.app) - PUBLIC


@pytest.mark.parametrize("route", ROUTES)
def test_a_key_is_needed(world: World, route: str) -> None:
    method, path = request(route)
    with world.client("none") as client:
        for headers in ({}, {"Authorization": "Bearer lrc_unknown-key"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (route, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", ROUTES)
def test_roles_below_the_route_are_refused(world: World, route: str) -> None:
    method, path = request(route)
    needed = NEEDS[route]
    for role in ROLES:
        with world.client(f"alpha-{role}") as client:
            response = client.request(method, path)
        if ROLES.index(role) < ROLES.index(needed):
            assert response.status_code == 403, (route, role, response.text)
            assert needed in response.json()["detail"]
        else:
            assert response.status_code not in (401, 403), (route, role, response.text)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/finetunes", {"dataset_id": "x"}),
        ("/v1/pretrains", {"series_ids": ["x"]}),
        ("/v1/segmentations", {"series_id": "x"}),
    ],
)
def test_viewers_start_no_work(world: World, path: str, body: dict[str, object]) -> None:
    with world.client("alpha-viewer") as viewer:
        before = viewer.get("/v1/jobs").json()
        refused = viewer.post(path, json=body)
        assert refused.status_code == 403
        assert viewer.get("/v1/jobs").json() == before


def test_only_admins_promote_and_nobody_changes_a_shared_model(world: World) -> None:
    with world.client("alpha-submitter") as submitter:
        assert submitter.post(f"/v1/models/{SHARED_MODEL}/versions/2/promote", json={}).status_code == 403
    with world.client("beta-admin") as admin:
        shared = admin.post(f"/v1/models/{SHARED_MODEL}/versions/1/promote", json={"override": True})
        assert shared.status_code == 403
        assert "shared" in shared.json()["detail"]
        rollback = admin.post(f"/v1/models/{SHARED_MODEL}/rollback", json={})
        assert rollback.status_code == 403
        assert "shared" in rollback.json()["detail"]
