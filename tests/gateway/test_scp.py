"""The DICOM listener with real associations: C-ECHO from Orthanc, C-STORE, the calling-AE allow-list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import highdicom
import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, LegacyConvertedEnhancedCTImageStorage, Verification

from gateway import scp
from gateway.inbox import Inbox
from gateway.settings import GatewaySettings
from tests import dicom_factory
from tests.gateway.conftest import GATEWAY_AET, MODALITY, ct_series
from tests.gateway.orthanc import Orthanc


@pytest.fixture
def listener(gateway_port: int, tmp_path: Path) -> Iterator[Inbox]:
    """The SCP in this process on the port Orthanc knows, accepting only Orthanc's AE title."""
    settings = GatewaySettings(
        ae_title=GATEWAY_AET,
        host="127.0.0.1",
        port=gateway_port,
        allowed_callers=["ORTHANC", "TESTSCU"],
        data_dir=tmp_path / "gateway",
        destination="PACS@127.0.0.1:104",
    )
    inbox = Inbox(settings.data_dir, series_timeout=60)
    server = scp.start(settings, inbox)
    try:
        yield inbox
    finally:
        server.shutdown()


def associate(port: int, calling: str, *contexts: str) -> object:
    ae = AE(ae_title=calling)
    for context in contexts:
        ae.add_requested_context(context)
    return ae.associate("127.0.0.1", port, ae_title=GATEWAY_AET)


def test_echo_from_orthanc(listener: Inbox, orthanc: Orthanc):
    assert orthanc.post(f"/modalities/{MODALITY}/echo", {}) == {}


def test_calling_ae_not_on_the_allow_list_is_rejected(listener: Inbox, gateway_port: int):
    association = associate(gateway_port, "INTRUDER", Verification)
    assert association.is_rejected  # type: ignore[attr-defined]
    allowed = associate(gateway_port, "TESTSCU", Verification)
    assert allowed.is_established  # type: ignore[attr-defined]
    assert allowed.send_c_echo().Status == 0x0000  # type: ignore[attr-defined]
    allowed.release()  # type: ignore[attr-defined]


def test_series_from_orthanc_is_on_disk_by_series(listener: Inbox, orthanc: Orthanc, shared_data: Path, tmp_path: Path):
    files = ct_series(shared_data, tmp_path / "ct", count=5)
    series_uid = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    answer = orthanc.send(MODALITY, orthanc.upload(files))
    assert answer["InstancesCount"] == 5
    assert answer.get("FailedInstancesCount", 0) == 0
    stored = sorted((listener.incoming / series_uid).glob("*.dcm"))
    assert sorted(p.stem for p in stored) == sorted(str(pydicom.dcmread(f).SOPInstanceUID) for f in files)
    for path in stored:
        assert pydicom.dcmread(path).SeriesInstanceUID == series_uid
    assert series_uid in listener.pending()
    assert not list(listener.tmp.iterdir())


def test_enhanced_ct_is_accepted(listener: Inbox, gateway_port: int, shared_data: Path, tmp_path: Path):
    slices = [pydicom.dcmread(p) for p in ct_series(shared_data, tmp_path / "ct", count=4)]
    for ds in slices:  # the real header's one-component name ("JANCT000") makes highdicom warn
        ds.PatientName = f"{ds.PatientName}^"
    enhanced = highdicom.legacy.LegacyConvertedEnhancedCTImage(slices, generate_uid(), 2, generate_uid(), 1)
    association = associate(gateway_port, "TESTSCU", LegacyConvertedEnhancedCTImageStorage, CTImageStorage)
    assert association.is_established  # type: ignore[attr-defined]
    status = association.send_c_store(enhanced)  # type: ignore[attr-defined]
    association.release()  # type: ignore[attr-defined]
    assert status.Status == 0x0000
    stored = pydicom.dcmread(listener.incoming / enhanced.SeriesInstanceUID / f"{enhanced.SOPInstanceUID}.dcm")
    assert int(stored.NumberOfFrames) == 4


@pytest.mark.parametrize(
    "options",
    [
        {"pixel_spacing": (1e-30, 1e-30)},  # a singular affine: no export of it would work
        {"orientation": (1000, 0, 0, 0, 0.001, 0)},  # would be 800 x 0.0008 mm pixels
        {"size": 1},
        {"slope": 0.0},
    ],
)
def test_instances_outside_the_readers_bounds_get_a_failure_status(
    listener: Inbox, gateway_port: int, shared_data: Path, tmp_path: Path, options: dict[str, Any]
):
    defaults: dict[str, Any] = {"size": 64, "pixel_spacing": (3.0, 3.0)}
    (path,) = dicom_factory.write_series(shared_data, tmp_path / "ct", dicom_factory.line(1), **{**defaults, **options})
    association = associate(gateway_port, "TESTSCU", CTImageStorage)
    assert association.is_established  # type: ignore[attr-defined]
    status = association.send_c_store(pydicom.dcmread(path))  # type: ignore[attr-defined]
    association.release()  # type: ignore[attr-defined]
    assert status.Status == scp.CANNOT_UNDERSTAND
    assert not list(listener.incoming.rglob("*.dcm"))
    assert not list(listener.tmp.iterdir())
