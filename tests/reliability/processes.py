"""Processes of a running ``lrc serve``, read from ``/proc`` (Linux): which PID is which worker, and how much
memory a process holds."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


def _status(pid: int, field_name: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` in bytes (0 once the process is gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss(pid: int) -> int:
    """Resident memory of ``pid`` now, in bytes."""
    return _status(pid, "VmRSS")


def peak_rss(pid: int) -> int:
    """The most resident memory ``pid`` held since it started or since :func:`reset_peak_rss`, in bytes."""
    return _status(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Start ``pid``'s peak resident memory again from what it holds now (Linux 4.0+)."""
    (PROC / str(pid) / "clear_refs").write_text("5")


def descendants(pid: int) -> list[int]:
    """Children of ``pid``, their children, and so on."""
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children(parent)]
        found += frontier
    return found


@dataclass
class Memory:
    """What :func:`watch_memory` saw: resident bytes of the process (its kernel-kept peak and samples) and
    the most its descendants held together in one sample."""

    pid: int
    before: int = 0
    peak: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds since the start, bytes)
    children_peak: int = 0

    @property
    def growth(self) -> int:
        """The peak above what the process held when watching began."""
        return self.peak - self.before


@contextmanager
def watch_memory(pid: int, every: float = 0.01, children_every: float = 0.2) -> Iterator[Memory]:
    """Watch ``pid``'s resident memory while the block runs: the kernel's peak (``VmHWM``, reset at the start,
    so no spike between samples is missed), samples every ``every`` s, its descendants every ``children_every`` s."""
    memory = Memory(pid, before=rss(pid))
    reset_peak_rss(pid)
    stop = threading.Event()
    begin = time.monotonic()

    def sample() -> None:
        next_children = 0.0
        while not stop.is_set():
            moment = time.monotonic() - begin
            memory.samples.append((moment, rss(pid)))
            if moment >= next_children:
                memory.children_peak = max(memory.children_peak, sum(rss(c) for c in descendants(pid)))
                next_children = moment + children_every
            stop.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield memory
    finally:
        stop.set()
        thread.join()
        memory.peak = max(peak_rss(pid), *(value for _, value in memory.samples))
