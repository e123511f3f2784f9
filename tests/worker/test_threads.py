"""worker/threads.py: torch's thread pools in each worker process (``LRC_WORKER_TORCH_THREADS``)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from cli.service_commands import worker_command
from core.context import build_context
from core.settings import Settings
from tests.reliability.processes import children
from tests.service.harness import FAST, service_env
from worker import threads
from worker.threads import EMBEDDED_WORKERS, available_cpus, torch_threads

REPORT = re.compile(r"torch threads in pool process (\d+): (\d+) intra-op, (\d+) inter-op")


@pytest.mark.parametrize(
    ("setting", "workers", "cpus", "omp", "expected"),
    [
        (None, 2, 16, None, 8),  # the CPUs shared among lrc serve's worker processes
        (None, 2, 7, None, 3),
        (None, 2, 1, None, 1),  # at least one
        (None, 2, 16, "4", None),  # OMP_NUM_THREADS given: torch follows it
        (3, 2, 16, None, 3),
        (3, 2, 16, "1", 3),  # the setting wins
        (0, 2, 16, None, None),  # torch's own default
    ],
)
def test_thread_count(setting: int | None, workers: int, cpus: int, omp: str | None, expected: int | None):
    assert torch_threads(setting, workers, cpus, omp) == expected


def _pool_report(tmp_path: Path, extra_env: dict[str, str]) -> tuple[int, int, int, list[int]]:
    """Start a real worker; return what its pool process reports (pid, intra-op, inter-op threads)
    and the worker's child processes."""
    settings = Settings(data_dir=tmp_path / "data", **FAST)
    build_context(settings).db.engine.dispose()  # tables, as `lrc worker` makes them
    env = service_env(settings)
    env.pop("OMP_NUM_THREADS", None)
    env.update(extra_env)
    log = tmp_path / "worker.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(worker_command("io", "threads", embedded=True), env=env, stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + 90
        while not (found := REPORT.search(log.read_text())):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        pool = children(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    return int(found[1]), int(found[2]), int(found[3]), pool


def test_a_started_worker_uses_the_setting(tmp_path: Path):
    pid, intra, inter, pool = _pool_report(tmp_path, {"LRC_WORKER_TORCH_THREADS": "3"})
    assert pid in pool  # set in the process that runs the tasks, not only in the worker's main process
    assert (intra, inter) == (3, 3)


def test_a_started_worker_shares_the_cpus_by_default(tmp_path: Path):
    _, intra, inter, _ = _pool_report(tmp_path, {})
    expected = max(1, available_cpus() // len(EMBEDDED_WORKERS))
    assert (intra, inter) == (expected, expected)


def test_a_model_job_gets_every_cpu_while_no_other_worker_runs_one():
    import torch

    before = torch.get_num_threads()
    try:
        threads.lend_when_idle(1, 4)  # the default policy: 1 thread each, 4 CPUs
        assert threads.lend_idle_cpus(lambda: 0) == 4
        assert torch.get_num_threads() == 4
        assert threads.lend_idle_cpus(lambda: 1) == 1  # a training runs beside it: the share
        assert torch.get_num_threads() == 1
        for fixed in ((None, 4), (2, 2)):  # a setting or OMP_NUM_THREADS, or nothing to lend
            threads.lend_when_idle(*fixed)
            assert threads.lend_idle_cpus(lambda: 0) is None
            assert torch.get_num_threads() == 1
    finally:
        threads.lend_when_idle(None, 1)
        torch.set_num_threads(before)
