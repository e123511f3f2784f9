"""Processes of a running ``lrc serve``, read from ``/proc`` (Linux): which PID is which worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def _ppid(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    return int(stat.rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid``."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and _ppid(int(entry.name)) == pid:
            found.append(int(entry.name))
    return sorted(found)


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` (empty once it is gone)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def celery_worker(serve_pid: int, name: str) -> int:
    """The Celery main process of the embedded worker ``name`` (``infer`` or ``train``) of ``lrc serve``."""
    for pid in children(serve_pid):
        line = cmdline(pid)
        if "celery" in " ".join(line) and f"{name}@%h" in line:
            return pid
    raise LookupError(f"no running worker {name!r} under lrc serve (PID {serve_pid})")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_hard(pids: list[int], timeout: float = 10) -> None:
    """SIGKILL every PID, and wait until they are gone."""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} survived SIGKILL"
        time.sleep(0.05)
