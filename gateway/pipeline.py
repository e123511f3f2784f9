"""Carrying out the outbox's steps: complete series -> service -> segmentation -> PACS.

``admit`` routes a complete series by the rules and adds its ``upload`` step; ``run_due`` runs
every step whose time has come. Each step ends in one of three ways: finished (the next steps are
added in the same transaction), tried again later (backoff; a result not ready yet is polled
without counting a failure), or failed for good (kept in the outbox with the reason).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom

from gateway.api_client import FAILED_JOB, ServiceClient
from gateway.deidentify import Pseudonyms
from gateway.delivery import Delivery
from gateway.durable import write_durably
from gateway.errors import NotReady, Permanent, Retryable
from gateway.inbox import Batch, Inbox
from gateway.outbox import NewStep, Outbox, Step
from gateway.rules import Rules, SeriesInfo
from lrc.writers import DICOM_SEG, get_writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """How long to wait between polls and failed tries."""

    poll: float = 1.0
    retry_base: float = 2.0
    retry_max: float = 300.0

    def backoff(self, attempts: int) -> float:
        """The delay after the ``attempts + 1``-th failure: doubling from ``retry_base``, at most ``retry_max``."""
        return min(self.retry_max, self.retry_base * 2 ** min(attempts, 32))


class Pipeline:
    """The gateway's work, one step at a time (one thread)."""

    def __init__(
        self,
        inbox: Inbox,
        outbox: Outbox,
        rules: Rules,
        client: ServiceClient,
        delivery: Delivery,
        results_dir: Path,
        formats: tuple[str, ...] = (DICOM_SEG.name,),
        timing: Timing = Timing(),
        keep_instances: bool = False,
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self.inbox = inbox
        self.outbox = outbox
        self.rules = rules
        self.client = client
        self.delivery = delivery
        self.results_dir = results_dir
        self.formats = formats
        self.timing = timing
        self.keep_instances = keep_instances
        self.pseudonyms = pseudonyms
        self._handlers: dict[str, Callable[[Step], None]] = {
            "upload": self._upload,
            "segment": self._segment,
            "wait": self._wait,
            "deliver": self._deliver,
        }

    def admit(self, batch: Batch) -> None:
        """Route a complete series: add its upload step, or drop it if the rules say ignore."""
        info = SeriesInfo.read(batch.folder)
        route = self.rules.route(info)
        if route.ignore:
            log.info("batch %s (%s, %d frames) ignored by %s", batch.id, info.modality, info.slices, route.rule)
            self.inbox.remove(batch.id)
            return
        log.info(
            "batch %s (%s, %d frames) -> model %s (%s)", batch.id, info.modality, info.slices, route.model, route.rule
        )
        payload = {"folder": str(batch.folder), "series_uid": batch.series_uid, "model": route.model}
        self.outbox.add(batch.id, [NewStep("upload", batch.series_uid, payload)])

    def recover(self) -> None:
        """Admit complete series left on disk by a process that stopped before recording them."""
        for batch in self.inbox.batches():
            if not self.outbox.known(batch.id):
                self.admit(batch)

    def run_due(self, now: float | None = None) -> int:
        """Run the steps whose time has come; how many ran."""
        steps = self.outbox.due(now)
        for step in steps:
            self.run(step)
        return len(steps)

    def run(self, step: Step) -> None:
        """Run one step and record its outcome."""
        try:
            self._handlers[step.kind](step)
        except NotReady as exc:
            self.outbox.retry(step, str(exc), self.timing.poll, count=False)
            return
        except Retryable as exc:
            delay = self.timing.backoff(step.attempts)
            log.warning(
                "%s of batch %s, try %d: %s; again in %.0f s", step.kind, step.batch, step.attempts + 1, exc, delay
            )
            self.outbox.retry(step, str(exc), delay)
            return
        except Permanent as exc:
            log.error("%s of batch %s failed for good: %s", step.kind, step.batch, exc)
            self.outbox.fail(step, str(exc))
            return
        except Exception as exc:  # a bug or a broken file: keep the step, say why, try later
            log.exception("%s of batch %s raised", step.kind, step.batch)
            self.outbox.retry(step, f"{type(exc).__name__}: {exc}", self.timing.backoff(step.attempts))
            return
        self._tidy(step.batch)

    def _upload(self, step: Step) -> None:
        folder = Path(step.payload["folder"])
        if not folder.is_dir():
            raise Permanent(f"the received instances of batch {step.batch} are gone ({folder})")
        if self.pseudonyms is None:
            series_ids = self.client.upload(folder, step.payload["series_uid"])
        else:
            series_ids = self._upload_deidentified(folder, step.payload["series_uid"])
        model = step.payload["model"]
        then = [NewStep("segment", sid, {"series_id": sid, "model": model}) for sid in series_ids]
        self.outbox.finish(step, {**step.payload, "series_ids": series_ids}, then)

    def _upload_deidentified(self, folder: Path, series_uid: str) -> list[str]:
        """Upload a de-identified copy (the same bytes each time: the anonymizer's seed is fixed)."""
        assert self.pseudonyms is not None
        copy = Path(tempfile.mkdtemp(prefix="deid-", dir=self.inbox.tmp))
        try:
            pseudonyms = self.pseudonyms.deidentify_folder(folder, copy)
            return self.client.upload(copy, pseudonyms[series_uid])
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    def _segment(self, step: Step) -> None:
        series_id, model = step.payload["series_id"], step.payload["model"]
        intent = step.payload.get("intent")
        if intent is None:
            # Recorded before the call: after a crash before its answer is recorded, the step asks again with
            # the same Idempotency-Key, and the service answers with the segmentation it made the first time.
            intent = {"key": uuid.uuid4().hex}
            step = self.outbox.note(step, {**step.payload, "intent": intent})
        segmentation_id, job_id = self.client.segment(series_id, model, intent["key"])
        log.info("batch %s: segmentation %s, job %s", step.batch, segmentation_id, job_id)
        payload = {"segmentation_id": segmentation_id, "job_id": job_id}
        self.outbox.finish(step, {**step.payload, **payload}, [NewStep("wait", segmentation_id, payload)])

    def _wait(self, step: Step) -> None:
        segmentation_id = step.payload["segmentation_id"]
        job = self.client.job(step.payload["job_id"])
        if job["state"] in FAILED_JOB:
            raise Permanent(f"segmentation job {job['id']} {job['state']}: {job.get('error') or 'no reason given'}")
        if job["state"] != "succeeded":
            raise NotReady(f"segmentation job {job['id']} is {job['state']}")
        then = []
        for fmt in self.formats:
            data = self.client.result(segmentation_id, fmt)
            if self.pseudonyms is not None:  # back to the original patient, study and referenced UIDs
                data = self.pseudonyms.reidentify_bytes(data)
            name = f"{segmentation_id}.{fmt}{get_writer(fmt).extension}"
            path = write_durably(self.results_dir / name, data, self.inbox.tmp)
            sop_uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            then.append(
                NewStep("deliver", f"{segmentation_id}:{fmt}", {"path": str(path), "sop_instance_uid": sop_uid})
            )
        self.outbox.finish(step, step.payload, then)

    def _deliver(self, step: Step) -> None:
        sop_uid = step.payload["sop_instance_uid"]
        if not self.outbox.was_delivered(sop_uid, self.delivery.name):
            self.delivery.send(Path(step.payload["path"]))
            log.info("batch %s: instance delivered to %s", step.batch, self.delivery.name)
        self.outbox.delivered(step, sop_uid, self.delivery.name, step.payload)

    def _tidy(self, batch: str) -> None:
        """Once every step of a batch is done, its received instances and results are not needed."""
        steps = self.outbox.steps(batch)
        if not steps or any(s.state != "done" for s in steps):
            return
        for step in steps:
            if step.kind == "deliver":
                Path(step.payload["path"]).unlink(missing_ok=True)
        if not self.keep_instances:
            self.inbox.remove(batch)
