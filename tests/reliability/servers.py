"""Servers the fault tests stop and start themselves: a private PostgreSQL cluster and redis-server.

Both run on a free port in a temporary folder, never the shared 127.0.0.1:5432 and :6379 (other
tests use those). Without the binaries a test fails and says what to install.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.service.harness import free_port
from tests.service.postgres import _pg_binary, _pg_connect
from tests.service.test_scaled import _redis_alive


class PgCluster:
    """A PostgreSQL cluster in a new temporary folder (run as ``postgres`` when the tests run as root).

    The folder is made with ``mkdtemp`` under the system's temporary folder: ``postgres`` cannot enter
    pytest's folders of root.
    """

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            pytest.fail("no initdb/pg_ctl to start a PostgreSQL cluster (apt-get install postgresql)")
        self.pg_ctl = pg_ctl
        self.folder = folder = Path(tempfile.mkdtemp(prefix="lrc-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        init = [*self.as_user, initdb, "-D", str(folder / "db"), "-U", "postgres", "-A", "trust"]
        subprocess.run(init, check=True, capture_output=True)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        command = [*self.as_user, self.pg_ctl, "-D", str(self.folder / "db"), "-o", options]
        # The server inherits pg_ctl's output: a log file, not a pipe that would never close.
        command += ["-l", str(self.folder / "log"), "-w", "start"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert _pg_connect(self.url), f"PostgreSQL did not start; see {self.folder / 'log'}"

    def stop(self) -> None:
        """Fast shutdown: open connections are terminated, as in a crash or a failover."""
        command = [*self.as_user, self.pg_ctl, "-D", str(self.folder / "db"), "-m", "fast", "stop"]
        subprocess.run(command, check=False, capture_output=True)

    def remove(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisServer:
    """``redis-server`` on a fixed free port with its files in ``folder``; ``persistent``: append-only file."""

    def __init__(self, folder: Path, persistent: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("no redis-server binary (apt-get install redis-server)")
        self.binary = binary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (from its append-only file, when persistent) and wait for PONG."""
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        command = [self.binary, "--port", str(self.port), "--dir", str(self.folder), "--save", "", *aof]
        with (self.folder / "log").open("ab") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=sink)
        deadline = time.monotonic() + 10
        while not _redis_alive(self.url):
            assert time.monotonic() < deadline, f"redis-server did not start; see {self.folder / 'log'}"
            time.sleep(0.05)

    def stop(self, hard: bool = False) -> None:
        """SIGTERM (it writes its files and exits) or SIGKILL (a crash)."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        self.process.wait(20)
        self.process = None
