"""``lrc serve`` (embedded mode) as users run it: jobs queued while it is down run after a restart,
and a job whose worker died mid-run is taken up again by the recovery sweep."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from app.services import segmentations
from cli import app as cli
from core.context import build_context
from core.records import jobs as job_records
from core.records.projects import DEFAULT
from core.settings import Settings
from tests.service.harness import ADMIN_KEY, FAST, lrc_serve, service_env

STARTER = "starter"


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, bootstrap_admin_key=ADMIN_KEY, **FAST)


@contextmanager
def serve(settings: Settings, tiny_model: Path, log: Path) -> Iterator[httpx.Client]:
    env = service_env(settings)
    env.update(LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY, LRC_STARTER_MODEL_DIR=str(tiny_model), LRC_STARTER_MODEL_NAME=STARTER)
    with lrc_serve(settings.data_dir, env, log) as (_, client):
        yield client


def _wait(client: httpx.Client, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def test_jobs_survive_a_restart(tiny_model: Path, ct_nifti: tuple[Path, Path], tmp_path: Path):
    settings = _settings(tmp_path / "data")
    log = tmp_path / "serve.log"
    with serve(settings, tiny_model, log) as client:
        models = client.get("/v1/models").json()
        assert [(m["name"], m["production_version"]) for m in models] == [(STARTER, 1)]
        _keeps_idle_connections(client.base_url.port or 0, idle=6.0)
        upload = client.post("/v1/studies", files=[("files", (ct_nifti[0].name, ct_nifti[0].read_bytes(), "x"))])
        series_id = upload.json()["series"][0]["id"]

    # While the service is down: one job queued (as the API does it), one left 'running' by a worker
    # that died (its record claims it, no process runs it).
    ctx = build_context(settings)
    _, queued_job = segmentations.create(ctx, series_id, None, None, DEFAULT)
    _, lost_job = segmentations.create(ctx, series_id, None, None, DEFAULT)
    with ctx.db.session() as session:
        claimed = job_records.claim(session, lost_job.id, lost_job.dispatch_token, f"infer@{socket.gethostname()}")
        assert claimed is not None

    with serve(settings, tiny_model, log) as client:
        queued_view = _wait(client, queued_job.id)
        lost_view = _wait(client, lost_job.id)
        assert client.get("/v1/models").json()[0]["versions"][0]["version"] == 1  # starter registered once
    assert queued_view["state"] == "succeeded", (queued_view, log.read_text()[-3000:])
    assert queued_view["attempts"] == 1
    assert lost_view["state"] == "succeeded", lost_view
    assert lost_view["attempts"] == 2  # the dead run, then the recovered one


def _keeps_idle_connections(port: int, idle: float) -> None:
    """A kept-alive connection still answers after ``idle`` seconds (uvicorn's default closes it after 5,
    before a reverse proxy's pool would stop reusing it)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: lrc\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        for _ in range(2):
            connection.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):  # headers, then the JSON body
                received = connection.recv(65536)
                assert received, f"the server closed the connection; got {answer!r}"
                answer += received
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(idle)


def test_keys_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path))  # restored afterwards; the command sets it too
    result = CliRunner().invoke(
        cli, ["keys", "create", "--name", "ci", "--role", "viewer", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("lrc_")
    radiology = ["keys", "create", "--name", "r", "--role", "admin", "--project", "radiology", "--data-dir"]
    other = CliRunner().invoke(cli, [*radiology, str(tmp_path)])
    assert other.exit_code == 0, other.output
    from core.records.keys import find_key

    ctx = build_context(Settings(data_dir=tmp_path))
    with ctx.db.session() as session:
        key = find_key(session, token)
        assert key is not None
        assert (key.role, key.project) == ("viewer", DEFAULT)
        key = find_key(session, other.output.strip())
        assert key is not None
        assert (key.role, key.project) == ("admin", "radiology")
    bad = CliRunner().invoke(cli, ["keys", "create", "--name", "x", "--role", "root", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 2
    shared = CliRunner().invoke(cli, ["keys", "create", "--name", "x", "--project", "*", "--data-dir", str(tmp_path)])
    assert shared.exit_code == 2  # the shared models' marker is no project a key may belong to
    assert "project name" in shared.output


def test_keys_are_listed_and_revoked_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path))
    where = ["--project", "radiology", "--data-dir", str(tmp_path)]

    def run(*words: str) -> Result:
        return CliRunner().invoke(cli, ["keys", *words, *where])

    tokens = {role: run("create", "--name", f"r-{role}", "--role", role).output.strip() for role in ("admin", "viewer")}
    listed = run("list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split("\t")[1]: line.split("\t") for line in listed.output.splitlines()}
    assert set(rows) == {"admin", "viewer"}
    assert {r[2] for r in rows.values()} == {"active"}
    assert not any(token in listed.output for token in tokens.values())  # ids, never tokens

    viewer = run("revoke", rows["viewer"][0])
    assert viewer.exit_code == 0, viewer.output
    kept = run("revoke", rows["admin"][0])
    assert kept.exit_code == 1
    assert "last active admin key" in kept.output
    assert "\tadmin\tactive\t" in run("list").output  # refused: still active
    assert run("revoke", "no-such-key").exit_code == 1
    elsewhere = CliRunner().invoke(cli, ["keys", "revoke", rows["admin"][0], "--data-dir", str(tmp_path)])
    assert elsewhere.exit_code == 1  # another project's key (here: default's) is not found
    forced = run("revoke", rows["admin"][0], "--force")  # a leaked last admin key
    assert forced.exit_code == 0, forced.output

    from core.records.keys import find_key

    with build_context(Settings(data_dir=tmp_path)).db.session() as session:
        assert find_key(session, tokens["admin"]) is None
        assert find_key(session, tokens["viewer"]) is None
    assert {line.split("\t")[2] for line in run("list").output.splitlines()} == {"revoked"}


def test_worker_command_refuses_unknown_queues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["worker", "--queues", "infer,gpu", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "gpu" in result.output
