"""The running gateway: the DICOM listener, and one loop that completes series and runs the outbox."""

from __future__ import annotations

import logging
import threading
import time

from gateway import scp
from gateway.api_client import ServiceClient
from gateway.deidentify import Pseudonyms
from gateway.delivery import CStoreDelivery, Delivery, StowDelivery
from gateway.errors import InvalidConfig
from gateway.inbox import Inbox
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline, Timing
from gateway.rules import load_rules
from gateway.settings import GatewaySettings
from lrc.io.atomic import make_folder
from lrc.writers import DICOM_SEG, RTSTRUCT

log = logging.getLogger(__name__)
RECOVER_EVERY_S = 60.0  # how often complete series on disk without outbox steps are looked for


def build_delivery(settings: GatewaySettings) -> Delivery:
    """C-STORE to ``--destination`` or STOW-RS to ``--stow-url``."""
    target = settings.target
    if target is not None:
        return CStoreDelivery(settings.ae_title, target, settings.dimse_timeout)
    assert settings.stow_url is not None  # the settings demand one of the two
    return StowDelivery(settings.stow_url, settings.http_timeout)


class Gateway:
    """Everything ``lrc gateway`` runs, built from its settings."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        rules = load_rules(settings.rules, settings.model)  # raises InvalidConfig before anything starts
        try:
            make_folder(settings.data_dir)
        except OSError as exc:
            raise InvalidConfig(f"the data folder (--data-dir, LRC_GATEWAY_DATA_DIR): {exc}") from exc
        self.inbox = Inbox(settings.data_dir, settings.series_timeout)
        self.outbox = Outbox(settings.data_dir / "outbox.sqlite")
        self.client = ServiceClient(settings.api_url, settings.api_key, settings.http_timeout, self.inbox.tmp)
        self.pseudonyms = Pseudonyms(settings.data_dir / "pseudonyms.sqlite") if settings.deidentify else None
        formats = (DICOM_SEG.name, RTSTRUCT.name) if settings.rtstruct else (DICOM_SEG.name,)
        self.pipeline = Pipeline(
            self.inbox,
            self.outbox,
            rules,
            self.client,
            build_delivery(settings),
            settings.data_dir / "results",
            formats,
            Timing(settings.poll_interval, settings.retry_base, settings.retry_max),
            settings.keep_instances,
            self.pseudonyms,
        )
        (settings.data_dir / "results").mkdir(parents=True, exist_ok=True)
        self._server: scp.ThreadedAssociationServer | None = None
        self._recovered = time.monotonic()

    def start(self) -> None:
        """Admit series a previous run left complete, then listen."""
        self.pipeline.recover()
        self._recovered = time.monotonic()
        self._server = scp.start(self.settings, self.inbox)

    def tick(self, now: float | None = None) -> None:
        """One turn of the loop: admit complete series, run due steps."""
        for batch in self.inbox.complete(now):
            try:
                self.pipeline.admit(batch)
            except Exception:  # the batch stays on disk; the next recovery admits it
                log.exception("batch %s could not be admitted; tried again in %.0f s", batch.id, RECOVER_EVERY_S)
        if time.monotonic() - self._recovered > RECOVER_EVERY_S:
            self.pipeline.recover()
            self._recovered = time.monotonic()
        self.pipeline.run_due(now)

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # the outbox keeps the work; a failure of one turn must not end the gateway
                log.exception("gateway loop")
            stop.wait(max(0.0, self.settings.poll_interval - (time.monotonic() - started)))

    def close(self) -> None:
        """Stop listening (open associations end) and close files and connections."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.client.close()
        self.outbox.close()
        if self.pseudonyms is not None:
            self.pseudonyms.close()
