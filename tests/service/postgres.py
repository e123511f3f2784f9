"""A PostgreSQL database for tests: the server at 127.0.0.1:5432 where it runs (trust authentication, as on
the project's machines and in CI), else a temporary cluster (as the ``postgres`` user when the tests run as
root). Without the binaries the tests fail and say what to install: CI must never skip them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.harness import free_port


def _pg_connect(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _pg_binary(name: str) -> str | None:
    """``initdb``/``pg_ctl`` from PATH or Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def _server_cluster() -> Iterator[str]:
    """A temporary PostgreSQL cluster on a free port (run as ``postgres`` when we are root)."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.fail("no PostgreSQL at 127.0.0.1:5432 and no initdb/pg_ctl to start one (apt-get install postgresql)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="lrc-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    port = free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(folder / "db"), "-U", "postgres", "-A", "trust"], check=True, capture_output=True
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    # The server inherits pg_ctl's output: a log file, not a pipe that would never close.
    start = [*as_user, pg_ctl, "-D", str(folder / "db"), "-o", options, "-l", str(folder / "log"), "-w", "start"]
    subprocess.run(start, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = [*as_user, pg_ctl, "-D", str(folder / "db"), "-m", "fast", "stop"]
        subprocess.run(stop, check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a fresh database, dropped afterwards."""
    import psycopg

    server = "postgresql://postgres@127.0.0.1:5432/postgres"
    cluster = None
    if not _pg_connect(server):
        cluster = _server_cluster()
        server = next(cluster)
    name = f"lrc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if cluster is not None:
            next(cluster, None)


@contextlib.contextmanager
def database_url(kind: str) -> Iterator[str | None]:
    """For tests run on both databases: ``None`` (the service's own SQLite file) for ``sqlite``, the URL
    of a fresh PostgreSQL database (dropped afterwards) for ``postgresql``."""
    if kind == "postgresql":
        with postgres_database() as url:
            yield url
    elif kind == "sqlite":
        yield None
    else:
        raise ValueError(f"unknown database kind {kind!r}")
