"""The DICOM listener: C-ECHO and C-STORE of CT and MR images (pynetdicom SCP).

An instance is acknowledged (status 0x0000) only after :class:`gateway.inbox.Inbox` has written
it durably, and only when :mod:`lrc.io` reads it as the service will (header, geometry, pixels
decoded): a corrupt, truncated or non-image instance gets a failure status (0xC000) at once, with
the reason in the gateway's log, instead of being acknowledged and failing later in the service,
where the sender never hears of it. Calling AE titles can be limited to an allow-list; others are
rejected at association.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRColorImageStorage,
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    MRImageStorage,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from gateway.inbox import Inbox
from gateway.settings import GatewaySettings
from lrc.io.dicom_read import ReadOptions, read_dicom
from lrc.io.errors import ImageIOError

log = logging.getLogger(__name__)

STORAGE_CLASSES = (
    CTImageStorage,
    EnhancedCTImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    MRImageStorage,
    EnhancedMRImageStorage,
    EnhancedMRColorImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
)
# Uncompressed first (what most senders propose), then the compressions PACS use for CT/MR.
TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)
# C-STORE failure statuses (PS3.4 B.2.3).
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000


def handle_echo(event: Event) -> int:
    """C-ECHO: we are here."""
    log.info("C-ECHO from %s", event.assoc.requestor.ae_title)
    return 0x0000


def handle_store(event: Event, inbox: Inbox) -> int:
    """C-STORE: write the instance durably into its series, then acknowledge it."""
    try:
        dataset = event.dataset
        series_uid = str(dataset.SeriesInstanceUID)
        sop_uid = str(dataset.SOPInstanceUID)
    except Exception:  # pydicom raises many kinds on a broken stream; the sender gets a failure status
        log.warning("C-STORE from %s: unreadable dataset", event.assoc.requestor.ae_title, exc_info=True)
        return CANNOT_UNDERSTAND
    try:
        inbox.store(series_uid, sop_uid, event.encoded_dataset(), check=check_image)
    except ValueError as exc:
        log.warning("C-STORE from %s refused: %s", event.assoc.requestor.ae_title, exc)
        return CANNOT_UNDERSTAND
    except OSError:
        log.exception("C-STORE: could not write the instance")
        return OUT_OF_RESOURCES
    except Exception as exc:  # a reader bug must cost one instance, never the listener
        log.exception("C-STORE from %s: instance not checked (%s)", event.assoc.requestor.ae_title, type(exc).__name__)
        return CANNOT_UNDERSTAND
    return 0x0000


def check_image(path: Path) -> None:
    """Raise ``ValueError`` unless the service's reader makes an image of ``path`` (header, geometry, pixels)."""
    try:
        result = read_dicom([path], ReadOptions(workers=1, extract_dir=path.parent))
    except ImageIOError as exc:
        raise ValueError(f"not an image the service can read: {exc}") from exc
    if not result.volumes:
        raise ValueError(f"not an image the service can read: {'; '.join(map(str, result.errors))}")


def build_ae(settings: GatewaySettings) -> AE:
    """The application entity: its title, the accepted contexts, the calling-AE allow-list."""
    ae = AE(ae_title=settings.ae_title)
    ae.add_supported_context(Verification)
    for sop_class in STORAGE_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    ae.require_calling_aet = list(settings.allowed_callers)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.dimse_timeout
    ae.maximum_associations = 16
    return ae


def start(settings: GatewaySettings, inbox: Inbox) -> ThreadedAssociationServer:
    """Listen on ``settings.host:settings.port`` in background threads; ``shutdown()`` stops it."""
    ae = build_ae(settings)
    handlers: list[Any] = [(evt.EVT_C_ECHO, handle_echo), (evt.EVT_C_STORE, handle_store, [inbox])]
    server = ae.start_server((settings.host, settings.port), block=False, evt_handlers=handlers)
    assert server is not None  # block=False returns the server
    log.info("DICOM listener %s on %s:%d", settings.ae_title, settings.host, settings.port)
    return server
