"""The outbox's steps run in this process against the real service and Orthanc: routing, recovery,
backoff, permanent failures, and a delivered instance never sent again."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest

from gateway.api_client import ServiceClient
from gateway.delivery import CStoreDelivery
from gateway.inbox import Inbox
from gateway.outbox import NewStep, Outbox
from gateway.pipeline import Pipeline, Timing
from gateway.rules import Rules, parse_rules
from gateway.settings import Destination
from tests.gateway.conftest import LrcService, ct_series
from tests.gateway.orthanc import Orthanc
from tests.service.harness import free_port

TIMING = Timing(poll=0.2, retry_base=1.0, retry_max=4.0)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Inbox, Outbox]]:
    inbox = Inbox(tmp_path / "gateway", series_timeout=1)
    outbox = Outbox(tmp_path / "gateway" / "outbox.sqlite")
    yield inbox, outbox
    outbox.close()


@pytest.fixture
def build(parts: tuple[Inbox, Outbox], lrc_service: LrcService) -> Iterator[Callable[..., Pipeline]]:
    """``build(destination, rules)``: a pipeline on the inbox and outbox of ``parts``, talking to the service."""
    clients: list[ServiceClient] = []

    def make(destination: Destination, rules: Rules | None = None) -> Pipeline:
        inbox, outbox = parts
        clients.append(ServiceClient(lrc_service.url, lrc_service.key, 60, inbox.tmp))
        delivery = CStoreDelivery("LRCGW", destination, timeout=15)
        return Pipeline(
            inbox, outbox, rules or Rules(), clients[-1], delivery, inbox.tmp.parent / "results", timing=TIMING
        )

    yield make
    for client in clients:
        client.close()


def receive(inbox: Inbox, files: list[Path]) -> str:
    """Files into the inbox as the listener stores them; the batch once complete."""
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        inbox.store(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), path.read_bytes())
    (batch,) = inbox.complete(time.time() + 2)
    return batch.id


@pytest.mark.parametrize(("attempts", "delay"), [(0, 1.0), (1, 2.0), (2, 4.0), (3, 4.0), (500, 4.0)])
def test_backoff_doubles_up_to_the_limit(attempts: int, delay: float):
    assert TIMING.backoff(attempts) == delay


def test_series_the_rules_ignore_are_dropped(
    parts: tuple[Inbox, Outbox], build: Callable[..., Pipeline], shared_data: Path, tmp_path: Path
):
    rules = parse_rules({"rules": [{"Modality": "CT", "MinSlices": 100, "model": "big-ct"}], "default": "ignore"})
    work = build(Destination("PACS", "127.0.0.1", free_port()), rules)
    batch = receive(parts[0], ct_series(shared_data, tmp_path / "ct", count=3))
    work.admit(parts[0].batches()[0])
    assert parts[1].steps() == []
    assert not (parts[0].batch_dir / batch).exists()


def test_a_batch_left_unrecorded_is_recovered(
    parts: tuple[Inbox, Outbox], build: Callable[..., Pipeline], shared_data: Path, tmp_path: Path
):
    rules = parse_rules({"rules": [{"Modality": ["MR", "CT"], "model": "gateway-test"}]})
    work = build(Destination("PACS", "127.0.0.1", free_port()), rules)
    batch = receive(parts[0], ct_series(shared_data, tmp_path / "ct", count=3))  # a crash before admit
    work.recover()
    work.recover()
    (step,) = parts[1].steps()
    assert (step.batch, step.kind, step.state) == (batch, "upload", "pending")
    assert step.payload["model"] == "gateway-test"


def test_input_the_service_refuses_fails_for_good(
    parts: tuple[Inbox, Outbox], build: Callable[..., Pipeline], shared_data: Path
):
    work = build(Destination("PACS", "127.0.0.1", free_port()))
    seg = shared_data / "dicom" / "seg_dcmqi" / "liver.dcm"  # a DICOM SEG: no image to segment
    receive(parts[0], [seg])
    work.admit(parts[0].batches()[0])
    assert work.run_due() == 1
    (step,) = parts[1].steps()
    assert step.state == "failed"
    assert "HTTP 4" in str(step.last_error)
    assert parts[0].batches()  # kept for whoever looks into it


def test_delivery_retried_with_backoff_and_never_repeated(
    parts: tuple[Inbox, Outbox], build: Callable[..., Pipeline], orthanc: Orthanc, shared_data: Path, tmp_path: Path
):
    outbox = parts[1]
    seg = tmp_path / "seg.dcm"
    shutil.copy(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", seg)
    sop_uid = str(pydicom.dcmread(seg).SOPInstanceUID)
    down = build(Destination(orthanc.aet, "127.0.0.1", free_port()))
    outbox.add("b1", [NewStep("deliver", "s1:dicom-seg", {"path": str(seg), "sop_instance_uid": sop_uid})])

    started = time.time()
    down.run_due()
    (step,) = outbox.steps()
    assert (step.state, step.attempts) == ("pending", 1)
    assert step.next_at == pytest.approx(started + 1.0, abs=0.5)
    assert down.run_due() == 0  # not due yet
    down.run_due(now=step.next_at)
    (step,) = outbox.steps()
    assert step.attempts == 2
    assert step.next_at == pytest.approx(time.time() + 2.0, abs=0.5)

    # Recorded as delivered to Orthanc (a crash after the record): the instance is not sent again.
    up = build(Destination(orthanc.aet, "127.0.0.1", orthanc.dicom_port))
    outbox.add("b2", [NewStep("deliver", "s2:dicom-seg", {"path": str(seg), "sop_instance_uid": sop_uid})])
    first = next(s for s in outbox.steps() if s.batch == "b2")
    outbox.delivered(first, sop_uid, up.delivery.name, first.payload)
    outbox.add("b3", [NewStep("deliver", "s3:dicom-seg", {"path": str(seg), "sop_instance_uid": sop_uid})])
    up.run_due(now=time.time())
    again = next(s for s in outbox.steps() if s.batch == "b3")
    assert again.state == "done"
    assert orthanc.post("/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}}) == []
