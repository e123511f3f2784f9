"""``lrc serve``, ``lrc worker`` and ``lrc keys`` (create, list, revoke): the service from the command line.

The service's modules (FastAPI, Celery, SQLAlchemy) are imported inside the commands, so that
``lrc info`` and friends stay fast.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.listening import check_listen

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.settings import Settings

app = typer.Typer()
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the service.")
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Service data folder (sets LRC_DATA_DIR; default .lrc-data).")
]
STOP_WAIT_S = 15
# A worker that died (killed, out of memory) is started again, at most this often per worker.
RESTARTS_PER_WINDOW = 5
RESTART_WINDOW_S = 300.0
WATCH_INTERVAL_S = 1.0


def _settings(data_dir: Path | None) -> Settings:
    if data_dir is not None:
        os.environ["LRC_DATA_DIR"] = str(data_dir)
    from pydantic import ValidationError

    from core.settings import get_settings

    get_settings.cache_clear()  # read the environment as it is now
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"LRC_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: invalid settings: {problems}", err=True)
        raise typer.Exit(2) from exc
    from lrc.io.atomic import make_folder

    try:
        make_folder(settings.data_dir)
        settings.prepare()
    except OSError as exc:
        typer.echo(f"error: the data folder (--data-dir, LRC_DATA_DIR): {exc}", err=True)
        raise typer.Exit(2) from exc
    return settings


def _check_project(name: str) -> str:
    """``--project``: a valid project name."""
    from core.records.projects import check_name

    try:
        return check_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _check_key_name(name: str) -> str:
    """``--name`` of a key: 1 to 128 characters, as the API takes."""
    if not name.strip() or len(name) > 128:
        raise typer.BadParameter(f"a key's name is 1 to 128 characters (who or what it is for), got {name!r}")
    return name


@contextmanager
def _records() -> Iterator[Session]:
    """A session on the service's database (after :func:`_settings`): committed on leaving, rolled back on an error."""
    from core.context import build_context
    from core.settings import get_settings

    with build_context(get_settings()).db.session() as session:
        yield session


def worker_command(queues: str, name: str, concurrency: int = 1, embedded: bool = False) -> list[str]:
    """The command line of a Celery worker process for ``queues``."""
    command = [sys.executable, "-m", "celery", "-A", "worker.main", "worker", "-Q", queues, "-n", f"{name}@%h"]
    command += ["-c", str(concurrency), "--loglevel", "INFO"]
    if embedded:  # nothing to gossip with on one machine; saves start-up time
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return command


def _exit(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when ``lrc serve`` dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            # A running job stays 'running' in the database; the next start's recovery sweep re-queues it.
            process.kill()
            process.wait()


class Supervisor:
    """Runs the embedded workers and starts again one that died, at most ``RESTARTS_PER_WINDOW`` times
    in ``RESTART_WINDOW_S`` seconds (a worker that dies at every start is not restarted forever).

    Every worker is started by the supervising thread and stopped by it: Linux delivers the
    parent-death signal when the *thread* that started a child ends, so that thread lives until the end.
    """

    def __init__(self, workers: tuple[tuple[str, str], ...] | None = None) -> None:
        from worker.threads import EMBEDDED_WORKERS

        self.workers = EMBEDDED_WORKERS if workers is None else workers
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, collections.deque[float]] = {name: collections.deque() for name, _ in self.workers}
        self._halt = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lrc-supervisor", daemon=True)

    def start(self) -> None:
        """Start the workers (returns once they are launched)."""
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        """Stop the workers gracefully and wait for them."""
        self._halt.set()
        self._thread.join()

    def _spawn(self, name: str, queues: str) -> None:
        command = worker_command(queues, name, embedded=True)
        self.processes[name] = subprocess.Popen(command, preexec_fn=_die_with_parent)

    def _run(self) -> None:
        try:
            for name, queues in self.workers:
                self._spawn(name, queues)
        finally:
            self._ready.set()
        while not self._halt.wait(WATCH_INTERVAL_S):
            for name, queues in self.workers:
                process = self.processes[name]
                if process.poll() is None:
                    continue
                recent = self.restarts[name]
                moment = time.monotonic()
                while recent and moment - recent[0] > RESTART_WINDOW_S:
                    recent.popleft()
                if len(recent) >= RESTARTS_PER_WINDOW:
                    continue  # reported once below, when the limit was reached
                recent.append(moment)
                typer.echo(f"worker {name} exited with {process.returncode}; starting it again", err=True)
                self._spawn(name, queues)
                if len(recent) == RESTARTS_PER_WINDOW:
                    typer.echo(
                        f"error: worker {name} was started {RESTARTS_PER_WINDOW} times in {RESTART_WINDOW_S:.0f} s; "
                        "if it dies again it stays down (see its log)",
                        err=True,
                    )
        _stop(list(self.processes.values()))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    keep_alive: Annotated[
        int,
        typer.Option(
            min=1,
            help="Seconds an idle HTTP connection is kept open: above a reverse proxy's idle timeout "
            "(60 s on AWS ALB and nginx upstream pools), or the proxy reuses connections the API closed (502s).",
        ),
    ] = 75,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Reverse proxies (addresses, comma-separated) whose X-Forwarded-Proto/-For are believed "
            "(uvicorn's; default: $FORWARDED_ALLOW_IPS or 127.0.0.1). Links use LRC_PUBLIC_URL when set.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run the API and its workers on this machine (SQLite, local blobs, an on-disk queue)."""
    _settings(data_dir)
    check_listen(host, port)  # before the workers start
    import uvicorn

    from app.main import start
    from core.context import build_context
    from core.settings import get_settings

    start(build_context(get_settings()))  # tables, bootstrap key, starter model before the workers start
    supervisor = Supervisor()
    supervisor.start()
    # uvicorn re-raises SIGTERM after its shutdown; with this handler that ends in SystemExit, so the
    # workers below are stopped gracefully instead of being orphaned.
    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            log_level="info",
            timeout_keep_alive=keep_alive,
            forwarded_allow_ips=forwarded_allow_ips,
        )
    finally:
        supervisor.stop()


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: infer, train, io.")] = "infer,train,io",
    name: Annotated[str, typer.Option(help="Worker name (unique per machine).")] = "worker",
    concurrency: Annotated[int, typer.Option(help="Tasks at a time (one per GPU for train).", min=1)] = 1,
    data_dir: DataDirOption = None,
) -> None:
    """Run a worker against the configured broker (LRC_BROKER_URL)."""
    _settings(data_dir)
    from core.celery_app import QUEUES

    unknown = sorted(set(queues.split(",")) - set(QUEUES))
    if unknown:
        typer.echo(f"error: unknown queue(s) {unknown}; use {', '.join(QUEUES)}", err=True)
        raise typer.Exit(2)
    from core.context import build_context
    from core.settings import get_settings

    ctx = build_context(get_settings())  # data folders and tables exist before the broker is opened
    try:
        ctx.queue.prepare()
    except Exception as exc:  # the worker itself keeps retrying the broker and says so
        typer.echo(f"warning: broker not reachable yet ({exc})", err=True)
    ctx.db.engine.dispose()
    command = worker_command(queues, name, concurrency)
    os.execv(command[0], command)


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="Who or what the key is for.", callback=_check_key_name)],
    role: Annotated[str, typer.Option(help="viewer, submitter or admin.")] = "submitter",
    project: Annotated[
        str,
        typer.Option(
            help="The project (tenant) the key belongs to; a new name starts a new project.", callback=_check_project
        ),
    ] = "default",
    data_dir: DataDirOption = None,
) -> None:
    """Create an API key of a project and print its token (shown only once)."""
    _settings(data_dir)
    from core.records.keys import ROLES
    from core.records.keys import create_key as create

    if role not in ROLES:
        typer.echo(f"error: role must be one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    with _records() as session:
        _, token = create(session, name, role, project)
    typer.echo(token)


@keys_app.command("list")
def list_keys(
    project: Annotated[str, typer.Option(help="The project whose keys to list.", callback=_check_project)] = "default",
    data_dir: DataDirOption = None,
) -> None:
    """List a project's keys, newest first: id, role, name, created, and whether revoked (never tokens)."""
    _settings(data_dir)
    from core.records.keys import list_keys as listed

    with _records() as session:
        for key in listed(session, project):
            state = "revoked" if key.revoked else "active"
            typer.echo(f"{key.id}\t{key.role}\t{state}\t{key.created_at:%Y-%m-%d %H:%M}\t{key.name}")


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (lrc keys list).")],
    project: Annotated[str, typer.Option(help="The project the key belongs to.", callback=_check_project)] = "default",
    force: Annotated[
        bool, typer.Option(help="Also revoke the project's last active admin key (a leaked one).")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke an API key: its token is refused from the next request on."""
    _settings(data_dir)
    from core.records.keys import revoke_key as revoke

    try:
        with _records() as session:
            key = revoke(session, key_id, project, keep_last_admin=not force)
            done = f"revoked {key.id} ({key.role}, {key.name})"
    except LookupError as exc:
        typer.echo(f"error: project {project!r} has no key {key_id!r}", err=True)
        raise typer.Exit(1) from exc
    except PermissionError as exc:
        typer.echo(f"error: {exc}; create another admin key first (lrc keys create), or use --force", err=True)
        raise typer.Exit(1) from exc
    typer.echo(done)  # once committed
