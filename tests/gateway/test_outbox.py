"""The outbox: steps added once, finished with their successors in one transaction, kept across reopening."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.outbox import NewStep, Outbox


def test_steps_are_added_once_and_finished_with_their_successors(tmp_path: Path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    upload = NewStep("upload", "1.2.3", {"folder": "x"})
    outbox.add("b1", [upload])
    outbox.add("b1", [upload])
    (step,) = outbox.due()
    assert (step.kind, step.state, step.attempts) == ("upload", "pending", 0)
    outbox.finish(step, {"folder": "x", "series_ids": ["s1"]}, [NewStep("segment", "s1", {"series_id": "s1"})])
    kinds = [(s.kind, s.state) for s in outbox.steps("b1")]
    assert kinds == [("upload", "done"), ("segment", "pending")]
    assert outbox.steps("b1")[0].payload["series_ids"] == ["s1"]
    assert outbox.open_steps("b1") == 1
    outbox.close()


def test_retries_and_failures_are_recorded_and_survive_reopening(tmp_path: Path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.add("b1", [NewStep("wait", "seg1", {}), NewStep("deliver", "seg1:dicom-seg", {})])
    wait, deliver = outbox.due()
    outbox.retry(wait, "not ready", 0.5, count=False)
    outbox.retry(deliver, "PACS down", 60)
    outbox.close()

    reopened = Outbox(tmp_path / "outbox.sqlite")
    assert reopened.due() == []
    (wait,) = reopened.due(time.time() + 1)
    assert (wait.attempts, wait.last_error) == (0, "not ready")
    deliver = reopened.steps("b1")[1]
    assert (deliver.attempts, deliver.last_error, deliver.state) == (1, "PACS down", "pending")
    reopened.fail(wait, "job failed")
    assert reopened.steps("b1")[0].state == "failed"
    assert not reopened.was_delivered("1.2.3", "dicom:PACS@h:104")
    reopened.delivered(deliver, "1.2.3", "dicom:PACS@h:104", {})
    assert reopened.was_delivered("1.2.3", "dicom:PACS@h:104")
    assert not reopened.was_delivered("1.2.3", "dicomweb:http://other")
    assert reopened.open_steps("b1") == 0
    reopened.close()


def test_unknown_kind_is_refused(tmp_path: Path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    with pytest.raises(ValueError, match="unknown step kind"):
        outbox.add("b1", [NewStep("mail", "x", {})])
    assert outbox.steps() == []
    outbox.close()
