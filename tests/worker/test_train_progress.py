"""A training job's progress: step, the pace's time left (eta_s), and validation passes as their own stage."""

from __future__ import annotations

import time
from typing import Any

import pytest

from worker.runners.train import _Progress


def test_progress_reports_time_left_and_validation():
    reports: list[tuple[float, str, dict[str, Any], bool]] = []

    def report(fraction: float, stage: str, metrics: dict[str, Any] | None = None, *, last: bool = False) -> None:
        reports.append((fraction, stage, dict(metrics or {}), last))

    progress = _Progress(report, 10, 0.05, 0.85, "training")
    time.sleep(0.2)
    progress(2, {"loss": 0.7})
    progress.validating(2, 0.5)
    progress(10, {"loss": 0.1})
    (f1, s1, m1, l1), (f2, s2, m2, l2), (f3, s3, m3, l3) = reports
    assert (s1, m1["step"], m1["steps"], m1["loss"], l1) == ("training", 2, 10, 0.7, False)
    assert m1["eta_s"] == pytest.approx(0.2 / 2 * 8, rel=0.5)  # 8 steps left at 0.1 s a step
    assert f1 == pytest.approx(0.05 + 0.85 * 0.2)
    assert (s2, m2["validated"], m2["loss"], f2, l2) == ("validating", 0.5, 0.7, f1, False)  # the step's metrics kept
    assert (s3, m3["eta_s"], l3, f3) == ("training", 0.0, True, pytest.approx(0.9))
