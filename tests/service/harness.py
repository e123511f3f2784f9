"""A running service for tests: the API served by uvicorn (real HTTP) and real Celery worker processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.main import create_app
from cli.service_commands import worker_command
from core.context import Context, build_context
from core.records.keys import create_key
from core.records.tables import WorkerBeat
from core.settings import Settings

ADMIN_KEY = "admin-key-for-the-tests-0123456789"
# Quick recovery for tests; no starter model (the tests register their own, whether lrc ships one or not).
FAST = {
    "heartbeat_s": 1.0,
    "stale_after_s": 5.0,
    "sweep_interval_s": 2.0,
    "device": "cpu",
    "starter_model_dir": Path(__file__).parent / "no-starter-model",
}
FINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRC_") or k == "LRC_SHARED_DATA"}
    env.update(
        LRC_DATA_DIR=str(settings.data_dir),
        LRC_DATABASE_URL=settings.database_url,
        LRC_BROKER_URL=settings.broker_url,
        LRC_HEARTBEAT_S=str(settings.heartbeat_s),
        LRC_STALE_AFTER_S=str(settings.stale_after_s),
        LRC_SWEEP_INTERVAL_S=str(settings.sweep_interval_s),
        LRC_DEVICE=settings.device,
        LRC_MAX_UPLOAD_BYTES=str(settings.max_upload_bytes),
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    return env


@dataclass
class Service:
    """The API in a thread of the test process, workers as child processes."""

    settings: Settings
    ctx: Context
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str = "admin") -> httpx.Client:
        """An HTTP client authenticated with a key of ``role`` (``none``: no key)."""
        return self.client_with(self.tokens[role] if role != "none" else None)

    def client_with(self, token: str | None) -> httpx.Client:
        """An HTTP client sending ``token`` as its bearer key (``None``: no key)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def wait_job(self, job_id: str, timeout: float = 120, states: tuple[str, ...] = FINAL) -> dict[str, Any]:
        """Poll a job until it reaches one of ``states``."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["state"] in states:
                    return job
                if time.monotonic() > deadline:
                    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
                time.sleep(0.3)

    def start_worker(self, queues: str, name: str, log: Path) -> subprocess.Popen[bytes]:
        """A Celery worker process; returns once it has reported itself ready."""
        with log.open("ab") as sink:
            process = subprocess.Popen(
                worker_command(queues, name, embedded=True), env=service_env(self.settings), stdout=sink, stderr=sink
            )
        self.workers.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.ctx.db.session() as session:
                if any(b.hostname.startswith(f"{name}@") for b in session.query(WorkerBeat)):
                    return process
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited with {process.returncode}; see {log}")
            time.sleep(0.2)
        raise RuntimeError(f"worker {name} did not start in 60 s; see {log}")

    def stop(self) -> None:
        """Stop workers and the API."""
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
        for process in self.workers:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.server.should_exit = True
        self.thread.join(10)
        self.ctx.db.engine.dispose()


def start_api(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve ``app`` with uvicorn (real HTTP) in a thread of this process; the server, its thread and URL."""
    port = free_port()
    # uvicorn closes a connection idle for timeout_keep_alive (5 s by default); a test client that
    # reuses it at that very moment gets "connection reset by peer" (CI met it once, after a job of
    # about 5 s). Tests hold their clients open across job waits, so keep idle connections longer.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", timeout_keep_alive=600
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def running_service(settings: Settings, workers: tuple[tuple[str, str], ...], log_dir: Path) -> Iterator[Service]:
    """Start the API and workers for ``settings``; stop them afterwards."""
    ctx = build_context(settings)
    server, thread, url = start_api(create_app(context=ctx))
    service = Service(settings, ctx, url, server, thread)
    service.tokens["admin"] = ADMIN_KEY
    with ctx.db.session() as session:
        for role in ("viewer", "submitter"):
            service.tokens[role] = create_key(session, f"test-{role}", role)[1]
    try:
        for name, queues in workers:
            service.start_worker(queues, name, log_dir / f"worker-{name}.log")
        yield service
    finally:
        service.stop()


def python() -> str:
    """The interpreter running the tests."""
    return sys.executable


@contextlib.contextmanager
def lrc_serve(
    data_dir: Path, env: dict[str, str], log: Path, workers: frozenset[str] = frozenset({"infer", "train"})
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """``lrc serve`` as users run it, in its own process group; yields once ``workers`` have a heartbeat.

    Yields the process and an admin client; stops it with SIGTERM (SIGKILL to the group after 60 s).
    """

    def ready(client: httpx.Client) -> bool:
        answer = client.get("/readyz")
        seen = {w.split("@")[0] for w in answer.json()["checks"].get("workers", [])}
        return answer.status_code == 200 and seen >= workers

    port = free_port()
    command = [str(Path(python()).parent / "lrc"), "serve", "--port", str(port), "--data-dir", str(data_dir)]
    with _process(command, port, env, log, ready, "lrc serve", timeout=120) as started:
        yield started


@contextlib.contextmanager
def api_process(
    env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """The API alone in a process of its own: uvicorn with ``app.main:create_app``, as ``lrc serve`` runs it,
    without workers (uploads need none); ``env`` gives the settings (``LRC_BOOTSTRAP_ADMIN_KEY`` = ``ADMIN_KEY``),
    ``cwd`` the source tree when ``env`` has no ``PYTHONPATH``.

    Yields the process and an admin client once ``/healthz`` answers; stops it as :func:`lrc_serve` does.
    """

    def healthy(client: httpx.Client) -> bool:
        return client.get("/healthz").status_code == 200

    port = free_port()
    command = [python(), "-m", "uvicorn", "--factory", "app.main:create_app", "--port", str(port)]
    with _process([*command, "--log-level", "warning"], port, env, log, healthy, "the API", 60, cwd) as started:
        yield started


@contextlib.contextmanager
def _process(
    command: list[str],
    port: int,
    env: dict[str, str],
    log: Path,
    ready: Callable[[httpx.Client], bool],
    what: str,
    timeout: float,
    cwd: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """``command`` in its own process group, serving on ``port``; yields once ``ready`` holds."""
    import signal

    with log.open("ab") as sink:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=sink, stderr=sink, start_new_session=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"{what} exited; see {log}"
            try:
                if ready(client):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{what} not ready in {timeout:.0f} s; see {log}"
            time.sleep(0.5)
        yield process, client
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
