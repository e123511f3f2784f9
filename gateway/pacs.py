"""Query and retrieve from a PACS by DIMSE: C-FIND for series, C-GET or C-MOVE to bring them here.

Used by ``lrc pacs`` to find a cohort (by modality, study date range, series description) and
bring it into the service. C-GET retrieves over the same association (no C-MOVE destination to
configure at the PACS); the PACS must know our AE title for query and retrieve. C-MOVE (for PACSs
without C-GET) sends to our AE title at the address the PACS has configured for it: a temporary
storage SCP listens on ``move_port`` while the move runs. :class:`Pacs` is what the cohort scripts
need of a PACS; :mod:`gateway.dicomweb_pacs` is the DICOMweb one.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydicom import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    RTStructureSetStorage,
    SegmentationStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from gateway.errors import GatewayError
from gateway.inbox import valid_uid
from gateway.scp import STORAGE_CLASSES, TRANSFER_SYNTAXES
from gateway.settings import Destination

log = logging.getLogger(__name__)
PENDING = (0xFF00, 0xFF01)
# C-GET final statuses that mean "everything asked for arrived" or "some did" (PS3.4 C.4.3.1.4).
GET_SUCCESS, GET_WARNING = 0x0000, 0xB000
# Images, and the label objects a fine-tuning dataset can take.
RETRIEVED_CLASSES = (*STORAGE_CLASSES, SegmentationStorage, RTStructureSetStorage)


class PacsError(GatewayError):
    """The PACS could not be reached or refused the query or retrieval."""


@dataclass(frozen=True)
class SeriesMatch:
    """A series the PACS found."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    study_date: str
    body_part: str
    instances: int


class Pacs(Protocol):
    """A PACS to search for series and retrieve them from."""

    def find_series(
        self,
        modality: str | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
        description: str | None = None,
        study_uid: str | None = None,
    ) -> list[SeriesMatch]:
        """Series matching every filter given (``description``: DICOM wildcards ``*`` and ``?``)."""
        ...

    def get_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        """Retrieve one series into ``folder`` (one file per SOP Instance UID); the files received."""
        ...


def date_range(since: dt.date | None, until: dt.date | None) -> str:
    """A DICOM date range matching key (``YYYYMMDD-YYYYMMDD``, open ends allowed; empty: any date)."""
    if since is None and until is None:
        return ""
    return f"{since.strftime('%Y%m%d') if since else ''}-{until.strftime('%Y%m%d') if until else ''}"


class DimsePacs:
    """A PACS reached by DIMSE as ``calling_ae``."""

    def __init__(
        self, calling_ae: str, node: Destination, timeout: float = 60, move_port: int | None = None, host: str = ""
    ) -> None:
        self.calling_ae = calling_ae
        self.node = node
        self.timeout = timeout
        self.move_port = move_port  # retrieve by C-MOVE to a storage SCP on this port; None: C-GET
        self.host = host  # where that storage SCP binds ("": every address)

    def _ae(self) -> AE:
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = min(self.timeout, 10.0)
        return ae

    def _associate(self, ae: AE, **kwargs: Any) -> Association:
        try:  # knock first: pynetdicom (3.0) leaves the socket of a refused connection unclosed
            socket.create_connection((self.node.host, self.node.port), ae.connection_timeout).close()
        except OSError as exc:
            raise PacsError(f"{self.node} could not be reached ({exc})") from exc
        association = ae.associate(self.node.host, self.node.port, ae_title=self.node.ae_title, **kwargs)
        if not association.is_established:
            why = "rejected" if association.is_rejected else "did not accept"
            raise PacsError(f"{self.node} {why} the association")
        return association

    def find_series(
        self,
        modality: str | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
        description: str | None = None,
        study_uid: str | None = None,
    ) -> list[SeriesMatch]:
        """Series matching every filter given (``description``: DICOM wildcards ``*`` and ``?``)."""
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study_uid or ""
        query.SeriesInstanceUID = ""
        query.Modality = modality or ""
        query.StudyDate = date_range(since, until)
        query.SeriesDescription = description or ""
        query.BodyPartExamined = ""
        query.NumberOfSeriesRelatedInstances = ""
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        association = self._associate(ae)
        found: list[SeriesMatch] = []
        try:
            for status, identifier in association.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
                code = int(status.get("Status", -1))
                if code in PENDING and identifier is not None:
                    found.append(series_match(identifier))
                elif code != 0x0000:
                    raise PacsError(f"C-FIND at {self.node} ended with status 0x{code & 0xFFFF:04X}")
        finally:
            association.release()
        return found

    def get_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        """C-GET (or C-MOVE) one series into ``folder`` (one file per SOP Instance UID); the files received."""
        folder.mkdir(parents=True, exist_ok=True)
        received: list[Path] = []
        handlers = [(evt.EVT_C_STORE, _receiver(folder, received, series_uid))]
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = series_uid
        final = self._get(query, handlers) if self.move_port is None else self._move(query, handlers, self.move_port)
        how = "C-GET" if self.move_port is None else "C-MOVE"
        if final not in (GET_SUCCESS, GET_WARNING) or not received:
            raise PacsError(f"{how} of series {series_uid} at {self.node}: status {final:#06x}, {len(received)} files")
        if final == GET_WARNING:
            log.warning("%s of series %s: some instances did not arrive (%d did)", how, series_uid, len(received))
        return received

    def _get(self, query: Dataset, handlers: list[Any]) -> int:
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in RETRIEVED_CLASSES:
            ae.add_requested_context(sop_class, list(TRANSFER_SYNTAXES))
        roles = [build_role(sop_class, scp_role=True) for sop_class in RETRIEVED_CLASSES]
        association = self._associate(ae, ext_neg=roles, evt_handlers=handlers)
        final = -1
        try:
            for status, _ in association.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
                final = int(status.get("Status", -1))
        finally:
            association.release()
        return final

    def _move(self, query: Dataset, handlers: list[Any], port: int) -> int:
        receiver = self._ae()
        for sop_class in RETRIEVED_CLASSES:
            receiver.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
        try:
            server = receiver.start_server((self.host, port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise PacsError(f"cannot listen on port {port} for the C-MOVE: {exc}") from exc
        assert server is not None  # block=False returns the server
        try:
            ae = self._ae()
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
            association = self._associate(ae)
            final = -1
            try:
                for status, _ in association.send_c_move(
                    query, self.calling_ae, StudyRootQueryRetrieveInformationModelMove
                ):
                    final = int(status.get("Status", -1))
            finally:
                association.release()
        finally:
            server.shutdown()
        return final


def _receiver(folder: Path, received: list[Path], series_uid: str) -> Any:
    """A C-STORE handler writing each instance of series ``series_uid`` to ``folder/<SOPInstanceUID>.dcm``.

    Instances of any other series are refused (0xC000): C-MOVE's storage SCP listens on a port that
    any node may send to while the move runs, and what it keeps is uploaded as the series asked for.
    """

    def store(event: Event) -> int:
        try:
            sop_uid = str(event.dataset.SOPInstanceUID)
            series = str(event.dataset.get("SeriesInstanceUID", ""))
        except Exception:  # pydicom raises many kinds on a broken stream
            return 0xC000
        if not valid_uid(sop_uid):
            return 0xC000
        if series != series_uid:
            log.warning("retrieve of series %s: an instance of another series refused", series_uid)
            return 0xC000
        path = folder / f"{sop_uid}.dcm"
        path.write_bytes(event.encoded_dataset())
        received.append(path)
        return 0x0000

    return store


def series_match(identifier: Dataset) -> SeriesMatch:
    """A C-FIND or QIDO-RS answer as a :class:`SeriesMatch`."""
    count = identifier.get("NumberOfSeriesRelatedInstances")
    return SeriesMatch(
        study_uid=str(identifier.get("StudyInstanceUID", "")),
        series_uid=str(identifier.get("SeriesInstanceUID", "")),
        modality=str(identifier.get("Modality", "")),
        description=str(identifier.get("SeriesDescription", "")),
        study_date=str(identifier.get("StudyDate", "")),
        body_part=str(identifier.get("BodyPartExamined", "")),
        instances=int(count) if count not in (None, "") else 0,
    )
