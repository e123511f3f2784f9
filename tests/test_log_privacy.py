"""The logging policy (lrc.log_privacy): what each kind of text becomes, and records formatted by the
formatters the service really uses (uvicorn's access log, the standard one) after redaction."""

from __future__ import annotations

import logging
import sys

import pytest
from uvicorn.logging import AccessFormatter

from lrc.log_privacy import protect, redact, scrub

SOP = "1.2.826.0.1.3680043.8.498.56414952712572523092362421672706192399"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # DICOMweb: the whole query, whatever it holds
        ("GET /dicomweb/instances?PatientID=PID-1&PatientName=Doe", "GET /dicomweb/instances?[redacted]"),
        ("GET /dicomweb/studies?limit=5", "GET /dicomweb/studies?[redacted]"),
        ("http://pacs:8042/dicom-web/series?00100020=PID-1 200", "http://pacs:8042/dicom-web/series?[redacted] 200"),
        # the API's own parameters are shown, any other value is not
        ("GET /v1/jobs?state=running&limit=5", "GET /v1/jobs?state=running&limit=5"),
        (
            "/v1/studies?key=abc&apikey=d&access_token=e&token=f&PatientID=g",
            "/v1/studies?key=[redacted]&apikey=[redacted]&access_token=[redacted]&token=[redacted]&PatientID=[redacted]",
        ),
        ("/v1/segmentations/s1/result?format=dicom-seg", "/v1/segmentations/s1/result?format=dicom-seg"),
        # UIDs, in paths and text; versions, addresses and plain numbers stay
        (
            f'copy Patient-related attributes from dataset "{SOP}"',
            'copy Patient-related attributes from dataset "[uid]"',
        ),
        (f"/dicomweb/studies/{SOP}/series/2.25.1234567", "/dicomweb/studies/[uid]/series/[uid]"),
        (f"cannot read /inbox/{SOP}.dcm", "cannot read /inbox/[uid].dcm"),
        (f"seg_{SOP}: written for series {SOP}.", "seg_[uid]: written for series [uid]."),
        ("2.1.0 and 1.2.3.4.05 and 3.2.840.10008.1 and 12.2.840.10008", None),
        (f"'UI<\\x00{SOP}\\x00 '", "'UI<\\x00[uid]\\x00 '"),  # a UID among escaped bytes
        # pydicom quotes a damaged file's raw header bytes: never logged
        (
            f"The value length (946) exceeds 64 for VR UI. Invalid value for VR UI: '\\x00PN\\x00DOE^JANE\\x00{SOP}'."
            " Please see <https://dicom.nema.org/medical/dicom/current/output/html/part05.html#table_6.2-1> for ...",
            "The value length (946) exceeds 64 for VR UI. Invalid value for VR UI: [redacted]."
            " Please see <https://dicom.nema.org/medical/dicom/current/output/html/part05.html#table_6.2-1> for ...",
        ),
        ("Invalid value for VR PN: 'DOE^JANE'", "Invalid value for VR PN: [redacted]"),
        ("highdicom 0.28.2, torch 2.13.0 on 127.0.0.1:8000 and 10.0.0.12", None),
        ("job 5f0c... took 1.25 s; 300 slices of 512x512, spacing 0.7x0.7x2.5", None),
        # keys
        ("Authorization: Bearer lrc_9mA-xyzxyzxyzxyz", "Authorization: Bearer [key]"),
        ("sent lrc_9mA-xyzxyzxyzxyz twice", "sent [key] twice"),
        ("Settings(api_key='s3cret-value', port=1)", "Settings(api_key='[key]', port=1)"),
    ],
)
def test_what_a_log_line_becomes(text: str, expected: str | None):
    assert redact(text) == (text if expected is None else expected)


def test_a_protected_secret_is_never_written():
    protect("bootstrap-admin-key-with-no-prefix")
    assert redact("LRC_BOOTSTRAP_ADMIN_KEY=bootstrap-admin-key-with-no-prefix") == "LRC_BOOTSTRAP_ADMIN_KEY=[key]"


def _record(msg: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]
    scrub(record)
    return record


def test_uvicorns_access_log_keeps_its_format():
    access = '%(client_addr)s - "%(request_line)s" %(status_code)s'
    record = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/dicomweb/series?PatientID=PID-1", "1.1", 200)
    line = AccessFormatter(access, use_colors=False).format(record)
    assert line == '127.0.0.1:5 - "GET /dicomweb/series?[redacted] HTTP/1.1" 200 OK'


def test_arguments_objects_and_tracebacks_are_redacted():
    formatter = logging.Formatter("%(message)s")
    assert formatter.format(_record("GET %s?%s", "/v1/studies", "token=abc")) == "GET /v1/studies?token=[redacted]"
    assert formatter.format(_record("series %s", {"uid": SOP})) == "series {'uid': '[uid]'}"
    try:
        raise ValueError(f"cannot read {SOP} from /dicomweb/studies?PatientName=Doe")
    except ValueError:
        line = formatter.format(_record("failed", exc_info=sys.exc_info()))
    assert SOP not in line
    assert "Doe" not in line
    assert line.endswith("ValueError: cannot read [uid] from /dicomweb/studies?[redacted]")


def test_a_short_value_is_not_taken_as_a_secret():
    """A test or a user passing --api-key k must not turn every k of every later line into [key]."""
    protect("k", "", None)
    assert redact("job 5f0c took 1.25 s; tokens kept") == "job 5f0c took 1.25 s; tokens kept"
