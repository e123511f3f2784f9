"""Sending a result instance to the PACS: DICOM C-STORE (pynetdicom SCU) or DICOMweb STOW-RS.

A delivery succeeds only on the remote's success (or warning) status. A remote that is down,
refuses the association, or is out of resources is :class:`Retryable`; a remote that refuses the
instance itself is :class:`Permanent`.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Protocol

import httpx
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from gateway.errors import Permanent, Retryable
from gateway.settings import Destination

# PS3.4 B.2.3: success, and the warnings that still mean "stored" (coercion, elements discarded).
STORED = frozenset({0x0000, 0x0001, 0xB000, 0xB006, 0xB007})
DICOM_JSON_FAILED_SOP = "00081198"
DICOM_JSON_FAILURE_REASON = "00081197"


class Delivery(Protocol):
    """Where results go."""

    @property
    def name(self) -> str:
        """The destination, as recorded with each delivered instance."""
        ...

    def send(self, path: Path) -> None:
        """Send one DICOM file; return once the remote has stored it."""
        ...


class CStoreDelivery:
    """C-STORE to a DICOM node."""

    def __init__(self, ae_title: str, destination: Destination, timeout: float) -> None:
        self.ae_title = ae_title
        self.destination = destination
        self.timeout = timeout

    @property
    def name(self) -> str:
        """``dicom:AE@HOST:PORT``."""
        return f"dicom:{self.destination}"

    def send(self, path: Path) -> None:
        """Store ``path`` at the destination."""
        dataset = pydicom.dcmread(path)
        syntax = dataset.file_meta.TransferSyntaxUID
        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = min(self.timeout, 10.0)
        ae.add_requested_context(dataset.SOPClassUID, list(dict.fromkeys([syntax, ExplicitVRLittleEndian])))
        if syntax != ImplicitVRLittleEndian:
            ae.add_requested_context(dataset.SOPClassUID, ImplicitVRLittleEndian)
        where = f"C-STORE to {self.destination}"
        # Knock first: a destination that is down is the common failure, and pynetdicom (3.0) leaves the
        # socket of a refused connection unclosed.
        try:
            socket.create_connection((self.destination.host, self.destination.port), ae.connection_timeout).close()
        except OSError as exc:
            raise Retryable(f"{where}: the destination could not be reached ({exc})") from exc
        association = ae.associate(self.destination.host, self.destination.port, ae_title=self.destination.ae_title)
        if not association.is_established:
            why = "rejected the association" if association.is_rejected else "could not be reached"
            raise Retryable(f"{where}: the destination {why}")
        try:
            status = association.send_c_store(dataset)
        except ValueError as exc:  # no presentation context the destination accepted fits the instance
            raise Permanent(f"{where}: {exc}") from exc
        finally:
            association.release()
        if "Status" not in status:
            raise Retryable(f"{where}: no answer (connection lost or timed out)")
        code = int(status.Status)
        if code in STORED:
            return
        message = f"{where}: status 0x{code:04X} {status.get('ErrorComment', '')}".rstrip()
        if code & 0xFF00 == 0xA700:  # out of resources
            raise Retryable(message)
        raise Permanent(message)


class StowDelivery:
    """STOW-RS (PS3.18 10.5) to a DICOMweb server."""

    def __init__(self, base_url: str, timeout: float, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = headers or {}

    @property
    def name(self) -> str:
        """``dicomweb:<base URL>``."""
        return f"dicomweb:{self.base_url}"

    def send(self, path: Path) -> None:
        """Store ``path`` through ``POST {base}/studies``."""
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                path.read_bytes(),
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        headers = {
            **self.headers,
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        }
        where = f"STOW-RS to {self.base_url}"
        try:
            response = httpx.post(f"{self.base_url}/studies", content=body, headers=headers, timeout=self.timeout)
        except httpx.TransportError as exc:
            raise Retryable(f"{where}: no answer ({type(exc).__name__}: {exc})") from exc
        if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
            raise Retryable(f"{where}: HTTP {response.status_code}")
        failed = _failures(response)
        if response.status_code not in (200, 202) or failed:
            message = f"{where}: HTTP {response.status_code}, failed instances: {failed or response.text[:200]}"
            if failed and all(reason & 0xFF00 == 0xA700 for reason in failed):
                raise Retryable(message)
            raise Permanent(message)


def _failures(response: httpx.Response) -> list[int]:
    """Failure reasons of the STOW-RS response's FailedSOPSequence."""
    try:
        body = response.json()
    except ValueError:
        return []
    items = (body.get(DICOM_JSON_FAILED_SOP) or {}).get("Value") or [] if isinstance(body, dict) else []
    reasons = []
    for item in items:
        values = (item.get(DICOM_JSON_FAILURE_REASON) or {}).get("Value") or [0x0110]
        reasons.append(int(values[0]))
    return reasons
