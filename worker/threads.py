"""Torch's thread pools in a worker process, sized once at its start (``LRC_WORKER_TORCH_THREADS``).

Torch starts one thread per core in every process. Two workers (and the API) on one machine then
spin against each other: on a shared 2-core machine a fine-tuning step was about 10x slower than
with one thread per worker. The default shares the CPUs among the worker processes ``lrc serve``
starts, and lends a model job every CPU when no other model job runs on the machine's other
workers or waits for one of them (:func:`lend_idle_cpus`): a segmentation of 300 slices took 27-30 s
on one thread of a 2-core machine and 18-21 s on two (``bench/SPEED.md``). Queued jobs that another
worker of the machine could take count: a batch submitted to two infer workers at once would
otherwise give the first job every CPU and the second one more.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)
# The workers ``lrc serve`` starts, (name, queues): inference and I/O keep models warm; training runs apart.
EMBEDDED_WORKERS = (("infer", "infer,io"), ("train", "train"))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def torch_threads(setting: int | None, workers: int, cpus: int, omp_num_threads: str | None = None) -> int | None:
    """Threads for torch in one worker process; ``None``: leave torch's own default.

    Args:
        setting: ``LRC_WORKER_TORCH_THREADS``; ``0`` means torch's default, unset (``None``) means
            ``cpus // workers``, at least 1, unless ``OMP_NUM_THREADS`` is given (torch follows it).
        workers: worker processes sharing the machine (those ``lrc serve`` starts).
        cpus: CPUs available.
        omp_num_threads: the ``OMP_NUM_THREADS`` environment variable, if set.
    """
    if setting == 0:
        return None
    if setting is not None:
        return setting
    if omp_num_threads:
        return None
    return max(1, cpus // max(1, workers))


def apply_torch_threads(count: int | None) -> tuple[int, int]:
    """Set torch's intra-op and inter-op pools to ``count`` threads (before any torch work in this
    process); returns the sizes torch reports afterwards."""
    import torch

    if count is not None:
        torch.set_num_threads(count)
        try:
            torch.set_num_interop_threads(count)
        except RuntimeError as exc:  # only possible before the first parallel work of the process
            log.warning("torch inter-op threads left at %d: %s", torch.get_num_interop_threads(), exc)
    return torch.get_num_threads(), torch.get_num_interop_threads()


MODEL_KINDS = ("segment", "finetune", "pretrain")  # jobs that run torch
_lending: tuple[int, int] | None = None  # (share, CPUs) under the default policy; None: fixed threads


def lend_when_idle(share: int | None, cpus: int) -> None:
    """Let :func:`lend_idle_cpus` size each model job (``share``: the default policy's threads;
    ``None``, a fixed setting or ``OMP_NUM_THREADS``: keep the threads as they are)."""
    global _lending
    _lending = None if share is None or share >= cpus else (share, cpus)


def lend_idle_cpus(count_competing: Callable[[], int]) -> int | None:
    """Size torch's intra-op pool for the model job about to run (``count_competing``: model jobs
    running on the machine's other workers or queued for them); returns the threads set, ``None``
    when the policy is fixed.

    A job that starts beside a running one takes the share; one already running keeps what it had
    until it ends (an oversubscription for that long).
    """
    if _lending is None:
        return None
    import torch

    share, cpus = _lending
    count = cpus if count_competing() == 0 else share
    torch.set_num_threads(count)
    return count
