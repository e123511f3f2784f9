"""API keys as bearer tokens, with roles: viewer < submitter < admin."""

from __future__ import annotations

import json
import time

from app.api.routes.jobs import KEEPALIVE_S, KEY_CHECK_S
from core.records.jobs import create_job
from core.records.keys import create_key
from core.records.projects import DEFAULT
from tests.service.harness import Service

PROBLEM = "application/problem+json"


def test_no_key_or_unknown_key(service: Service):
    with service.client("none") as client:
        missing = client.get("/v1/studies")
        wrong = client.get("/v1/studies", headers={"Authorization": "Bearer lrc_not-a-key"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"


def test_roles_are_enforced(service: Service):
    with service.client("viewer") as viewer:
        assert viewer.get("/v1/studies").status_code == 200
        assert viewer.get("/v1/models").status_code == 200
        refused = viewer.post("/v1/segmentations", json={"series_id": "x"})
        assert refused.status_code == 403
        assert "submitter" in refused.json()["detail"]
        assert viewer.post("/v1/keys", json={"name": "x", "role": "viewer"}).status_code == 403
    with service.client("submitter") as submitter:
        assert submitter.post("/v1/keys", json={"name": "x", "role": "viewer"}).status_code == 403
        assert submitter.delete("/v1/jobs/nope").status_code == 404  # allowed, but no such job


def test_admin_creates_keys_stored_hashed(service: Service):
    with service.client("admin") as admin:
        created = admin.post("/v1/keys", json={"name": "pacs-script", "role": "submitter"})
        assert created.status_code == 201
        token = created.json()["token"]
        assert token.startswith("lrc_")
        listed = admin.get("/v1/keys").json()
        assert all(k["token"] is None for k in listed)
    with service.client("none") as client:
        assert client.get("/v1/studies", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    database = service.settings.data_dir / "records.sqlite"
    assert token.encode() not in database.read_bytes()


def test_admin_revokes_a_key_and_its_token_stops_working_at_once(service: Service):
    with service.client("admin") as admin:
        created = admin.post("/v1/keys", json={"name": "leaked-script", "role": "submitter"}).json()
        with service.client_with(created["token"]) as leaked:
            assert leaked.get("/v1/studies").status_code == 200
            assert admin.delete(f"/v1/keys/{created['id']}").status_code == 204
            refused = leaked.get("/v1/studies")
            assert refused.status_code == 401
            assert "revoked" in refused.json()["detail"]
        listed = {k["id"]: k for k in admin.get("/v1/keys").json()}
        assert listed[created["id"]]["revoked"] is True  # kept, for the record
        assert admin.delete(f"/v1/keys/{created['id']}").status_code == 204  # again: nothing changes
        missing = admin.delete("/v1/keys/no-such-key")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == PROBLEM


def test_a_revoked_key_ends_its_job_event_stream(service: Service):
    with service.ctx.db.session() as session:  # recorded but never sent: it stays queued, its stream open
        job_id = create_job(session, "pretrain", {}, None, DEFAULT).id
    with service.client("admin") as admin:
        created = admin.post("/v1/keys", json={"name": "watcher", "role": "viewer"}).json()
        try:
            with (
                service.client_with(created["token"]) as watcher,
                watcher.stream("GET", f"/v1/jobs/{job_id}/events") as stream,
            ):
                assert stream.status_code == 200
                lines = stream.iter_lines()
                assert next(lines) == "event: job"
                assert admin.delete(f"/v1/keys/{created['id']}").status_code == 204
                # A hang check, not a speed target: without the check the stream only sends keep-alives.
                deadline = time.monotonic() + KEY_CHECK_S + KEEPALIVE_S + 5
                rest = []
                for line in lines:
                    rest.append(line)
                    assert time.monotonic() < deadline, f"the stream goes on after its key was revoked: {rest}"
        finally:
            assert admin.delete(f"/v1/jobs/{job_id}").status_code == 200
    events = [block.splitlines() for block in "\n".join(rest).split("\n\n") if block.strip()]
    assert events[-1][0] == "event: error", rest
    problem = json.loads(events[-1][1].removeprefix("data: "))
    assert (problem["status"], problem["detail"]) == (401, "the API key is unknown or revoked")


def test_the_last_admin_key_of_a_project_is_kept(service: Service):
    """Revoking it would leave nobody to manage the project's keys: make another admin first."""
    with service.ctx.db.session() as session:
        first, token = create_key(session, "first-admin", "admin", "revocation")
    with service.client_with(token) as admin:
        kept = admin.delete(f"/v1/keys/{first.id}")
        assert kept.status_code == 409
        assert "last active admin key" in kept.json()["detail"]
        second = admin.post("/v1/keys", json={"name": "second-admin", "role": "admin"}).json()
        assert admin.delete(f"/v1/keys/{first.id}").status_code == 204
        assert admin.get("/v1/keys").status_code == 401
    with service.client_with(second["token"]) as admin:
        assert admin.delete(f"/v1/keys/{second['id']}").status_code == 409
        assert {k["id"]: k["revoked"] for k in admin.get("/v1/keys").json()} == {first.id: True, second["id"]: False}


def test_health_ready_metrics(service: Service):
    with service.client("none") as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["database"] == checks["broker"] == checks["storage"] == "ok"
        assert any(w.startswith("infer@") for w in checks["workers"])
        metrics = client.get("/metrics").text
    assert "lrc_http_requests_total" in metrics
    assert "lrc_jobs" in metrics


def test_openapi_lists_the_api(service: Service):
    with service.client("none") as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/studies", "/v1/segmentations", "/v1/jobs/{job_id}", "/v1/models", "/v1/finetunes"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/studies"]["post"]["requestBody"]["content"]
