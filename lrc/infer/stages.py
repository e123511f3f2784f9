"""Seconds per stage of a prediction, for benchmarks and logs.

A :class:`StageTimes` passed to :meth:`lrc.infer.Predictor.predict` adds the seconds spent in
``preprocess`` (reorientation, transfer to the device, windowing, resampling to the model grid),
``model`` (the network's forward passes) and ``postprocess`` (resampling back, arg-max, label values,
back to the input's orientation). Stages interleave batch by batch, so each is a sum over batches.
On CUDA each stage boundary waits for the device (``torch.cuda.synchronize``), which costs a little:
without a ``StageTimes`` nothing is synchronised.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class StageTimes:
    """Seconds per named stage, summed over calls of :meth:`stage`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, device: torch.device) -> Iterator[None]:
        """Time the block (waiting for ``device`` before and after) and add it to ``name``."""
        _sync(device)
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync(device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class NoTimes(StageTimes):
    """Times nothing and never synchronises: the default of an untimed prediction."""

    @contextmanager
    def stage(self, name: str, device: torch.device) -> Iterator[None]:
        """Run the block as it is."""
        yield


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
