"""Results to a real Orthanc: C-STORE and STOW-RS, a resend stored once, remotes that are down or refuse."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from gateway.delivery import CStoreDelivery, StowDelivery
from gateway.errors import Permanent, Retryable
from gateway.settings import Destination
from tests.gateway.orthanc import Orthanc
from tests.service.harness import free_port


@pytest.fixture
def seg_file(shared_data: Path, tmp_path: Path) -> Path:
    """dcmqi's real liver SEG, with a new SOP Instance UID so that each test sends a new instance."""
    dataset = pydicom.dcmread(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm")
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = tmp_path / "seg.dcm"
    dataset.save_as(path)
    return path


def stored(orthanc: Orthanc, sop_uid: str) -> int:
    """How many instances with this SOP Instance UID Orthanc holds."""
    found = orthanc.post("/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}})
    return len(found)


def test_c_store_and_a_resend_is_stored_once(orthanc: Orthanc, seg_file: Path):
    delivery = CStoreDelivery("LRCGW", Destination(orthanc.aet, "127.0.0.1", orthanc.dicom_port), timeout=30)
    assert delivery.name == f"dicom:ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    sop_uid = str(pydicom.dcmread(seg_file).SOPInstanceUID)
    delivery.send(seg_file)
    delivery.send(seg_file)  # a crash after the remote's success, before it was recorded
    assert stored(orthanc, sop_uid) == 1


def test_stow_rs(orthanc: Orthanc, seg_file: Path):
    delivery = StowDelivery(orthanc.dicomweb, timeout=30)
    delivery.send(seg_file)
    delivery.send(seg_file)
    assert stored(orthanc, str(pydicom.dcmread(seg_file).SOPInstanceUID)) == 1


def test_a_destination_that_is_down_is_retried(seg_file: Path):
    nobody = free_port()
    with pytest.raises(Retryable, match="could not be reached"):
        CStoreDelivery("LRCGW", Destination("PACS", "127.0.0.1", nobody), timeout=5).send(seg_file)
    with pytest.raises(Retryable, match="no answer"):
        StowDelivery(f"http://127.0.0.1:{nobody}/dicom-web", timeout=5).send(seg_file)


def test_a_stow_url_that_is_wrong_is_permanent(orthanc: Orthanc, seg_file: Path):
    with pytest.raises(Permanent, match="HTTP 404"):
        StowDelivery(f"{orthanc.url}/no-such-root", timeout=30).send(seg_file)
