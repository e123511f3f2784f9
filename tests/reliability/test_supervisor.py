"""``lrc serve``'s supervisor: a worker that dies is started again, within a bounded restart rate."""

from __future__ import annotations

import sys
import time

import pytest

from cli import service_commands
from cli.service_commands import Supervisor


def test_a_dying_worker_is_restarted_at_a_bounded_rate(monkeypatch: pytest.MonkeyPatch):
    # A "worker" that exits at once, every time: restarted RESTARTS_PER_WINDOW times, then left down.
    monkeypatch.setattr(service_commands, "WATCH_INTERVAL_S", 0.05)
    monkeypatch.setattr(service_commands, "RESTARTS_PER_WINDOW", 3)
    monkeypatch.setattr(service_commands, "worker_command", lambda *_, **__: [sys.executable, "-c", "pass"])
    supervisor = Supervisor((("infer", "infer,io"),))
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while len(supervisor.restarts["infer"]) < 3:
            assert time.monotonic() < deadline, supervisor.restarts
            time.sleep(0.05)
        time.sleep(0.5)  # several more watch rounds: no fourth start
        assert len(supervisor.restarts["infer"]) == 3
    finally:
        supervisor.stop()
    assert supervisor.processes["infer"].poll() is not None


def test_stop_ends_running_workers(monkeypatch: pytest.MonkeyPatch):
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(service_commands, "worker_command", lambda *_, **__: sleeper)
    supervisor = Supervisor()
    supervisor.start()
    processes = dict(supervisor.processes)
    assert set(processes) == {"infer", "train"}
    assert all(p.poll() is None for p in processes.values())
    supervisor.stop()
    assert all(p.poll() is not None for p in processes.values())
    assert not any(supervisor.restarts.values())  # stopping is not dying: nothing was restarted
