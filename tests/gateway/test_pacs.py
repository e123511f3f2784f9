"""Query and retrieve against a real Orthanc: C-FIND by modality, study date range and description; C-GET."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pydicom
import pytest

from gateway.pacs import DimsePacs, PacsError, date_range
from gateway.settings import Destination
from tests.gateway.conftest import GATEWAY_AET, ct_series
from tests.gateway.orthanc import Orthanc
from tests.service.harness import free_port


def labelled_series(shared_data: Path, folder: Path, description: str, date: str, count: int = 3) -> list[Path]:
    """A CT series with a series description and a study date."""
    files = ct_series(shared_data, folder, count=count)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = description
        ds.StudyDate = date
        ds.save_as(path)
    return files


@pytest.mark.parametrize(
    ("since", "until", "text"),
    [
        (None, None, ""),
        (dt.date(2019, 3, 1), None, "20190301-"),
        (None, dt.date(2019, 3, 31), "-20190331"),
        (dt.date(2019, 3, 1), dt.date(2019, 3, 31), "20190301-20190331"),
    ],
)
def test_date_range(since: dt.date | None, until: dt.date | None, text: str):
    assert date_range(since, until) == text


def test_find_and_get(orthanc: Orthanc, shared_data: Path, tmp_path: Path):
    token = uuid.uuid4().hex[:8]
    wanted = labelled_series(shared_data, tmp_path / "a", f"Abdomen {token}", "20190305", count=3)
    orthanc.upload(wanted)
    orthanc.upload(labelled_series(shared_data, tmp_path / "b", f"Abdomen {token}", "20180101", count=2))
    pacs = DimsePacs(GATEWAY_AET, Destination(orthanc.aet, "127.0.0.1", orthanc.dicom_port))

    both = pacs.find_series(modality="CT", description=f"*{token}*")
    assert sorted(m.study_date for m in both) == ["20180101", "20190305"]
    (match,) = pacs.find_series("CT", dt.date(2019, 3, 1), dt.date(2019, 3, 31), f"*{token}*")
    assert match.series_uid == str(pydicom.dcmread(wanted[0]).SeriesInstanceUID)
    assert (match.modality, match.description, match.instances) == ("CT", f"Abdomen {token}", 3)
    assert pacs.find_series(modality="MR", description=f"*{token}*") == []

    files = pacs.get_series(match.study_uid, match.series_uid, tmp_path / "got")
    assert sorted(p.stem for p in files) == sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in wanted)
    assert pydicom.dcmread(files[0]).SeriesDescription == f"Abdomen {token}"


def test_a_pacs_that_is_down(tmp_path: Path):
    pacs = DimsePacs(GATEWAY_AET, Destination("PACS", "127.0.0.1", free_port()), timeout=5)
    with pytest.raises(PacsError, match="could not be reached"):
        pacs.find_series(modality="CT")


def test_retrieve_receiver_keeps_only_the_series_asked_for(shared_data: Path, tmp_path: Path):
    # C-MOVE's storage SCP listens on a port any node can reach while the move runs.
    from pynetdicom import AE, evt

    from gateway.pacs import RETRIEVED_CLASSES, _receiver

    wanted, other = ct_series(shared_data, tmp_path / "ct", count=2)
    stray = pydicom.dcmread(other)
    stray.SeriesInstanceUID = pydicom.uid.generate_uid()
    received: list[Path] = []
    folder = tmp_path / "got"
    folder.mkdir()
    listener = AE(ae_title=GATEWAY_AET)
    for sop_class in RETRIEVED_CLASSES:
        listener.add_supported_context(sop_class)
    port = free_port()
    handler = _receiver(folder, received, str(pydicom.dcmread(wanted).SeriesInstanceUID))
    server = listener.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handler)])
    try:
        sender = AE(ae_title="INTRUDER")
        sender.add_requested_context(stray.SOPClassUID, stray.file_meta.TransferSyntaxUID)
        association = sender.associate("127.0.0.1", port, ae_title=GATEWAY_AET)
        assert association.is_established
        try:
            assert int(association.send_c_store(stray).Status) != 0x0000
            assert int(association.send_c_store(pydicom.dcmread(wanted)).Status) == 0x0000
        finally:
            association.release()
    finally:
        server.shutdown()
    assert [p.name for p in received] == [f"{pydicom.dcmread(wanted).SOPInstanceUID}.dcm"]
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in received]
