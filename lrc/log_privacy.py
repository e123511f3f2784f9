"""What a log line of an lrc process may hold, and the log record factory that holds every line to it.

A log line may name jobs, the service's own records (series, studies, segmentations, models and API
keys by their ids), counts, shapes, spacings, timings, states and errors. It may not hold patient
names, patient ids or other patient attributes, DICOM UIDs, the query strings of DICOMweb requests,
the values of query parameters the API does not define, or API keys.

Patient names and ids look like any other text: no filter can tell them, so code never logs them
(a DICOM header or a dataset's repr included). What a filter can tell, :func:`install` removes
from every record the process makes, whoever makes it (uvicorn's access log, Celery, highdicom,
httpx, our own loggers), before any handler sees it:

- DICOM UIDs (dotted numbers whose first arc is 0, 1 or 2, PS3.5 9.1) become ``[uid]``, also
  inside escaped bytes (``\\x001.2.840...``);
- the value pydicom quotes in "Invalid value for VR ..." (from a damaged file: raw header bytes)
  becomes ``[redacted]``;
- Python warnings (pydicom's and highdicom's quote header values) are logged, so they are held to
  this policy too, instead of going to stderr as they are;
- the query of a URL or path under ``/dicomweb`` (or a PACS's ``/dicom-web``) becomes ``?[redacted]``;
  elsewhere the value of each parameter that is not one of :data:`API_PARAMETERS` becomes
  ``[redacted]`` (``key``, ``token``, ``access_token`` and the like, and whatever a client adds);
- ``Bearer <token>``, tokens of the service's form (``lrc_...``), the value of ``<name>=<value>``
  where the name ends in key, token, password or secret, and the secrets a process names with
  :func:`protect` (the bootstrap admin key, the gateway's key) become ``[key]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote

UID = "[uid]"
REDACTED = "[redacted]"
KEY = "[key]"
# The query parameters the API defines; their values are shown (they hold no patient data).
API_PARAMETERS = frozenset({"format", "state", "kind", "limit", "offset"})
# A UID: at least three arcs, no leading zeros, and at least 8 characters, so that versions
# ("2.1.0") and most IPv4 addresses are left alone; never part of a longer dotted number, but
# found beside letters and punctuation (a file "<uid>.dcm", "seg_<uid>", a sentence's full stop).
_UID = re.compile(r"(?:(?<![0-9.])|(?<=\\x[0-9a-f]{2}))[0-2](?:\.(?:0|[1-9][0-9]*)){2,}(?![0-9])(?!\.[0-9])")
# pydicom's validation warnings quote the offending value, which in a damaged file is a run of raw
# header bytes (names, ids, dates and UIDs of the patient): the quoted value is never logged.
_DICOM_VALUE = re.compile(r"(Invalid value for VR [A-Z]{2}: ).*?(?=\. Please see <https://dicom\.nema\.org|$)", re.S)
_URL_QUERY = re.compile(
    r"(?P<path>(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#\"'<>]*)?/[^\s?#\"'<>]*)\?(?P<query>[^\s#\"'<>]+)"
)
_DICOMWEB = re.compile(r"(?i)/dicom-?web")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_TOKEN = re.compile(r"\blrc_[A-Za-z0-9_-]{8,}")
# name=value outside a URL (a repr, a form echoed in an error): keys, tokens, passwords, secrets.
_ASSIGNED = re.compile(
    r"(?i)\b(?P<name>[\w-]*(?:key|token|password|passwd|secret))(?P<eq>\s*=\s*)(?P<q>['\"]?)(?!\[)[^\s'\",;&)]+"
)
_MIN_UID_LENGTH = 8
MIN_SECRET_LENGTH = 8
_secrets: set[str] = set()


def protect(*secrets: str | None) -> None:
    """Redact these values (a process's configured keys) from every later log record of the process.

    Values shorter than :data:`MIN_SECRET_LENGTH` are not taken: replacing every "k" of every line would
    garble the logs (the service's own keys are longer; a key that short protects nothing anyway).
    """
    _secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)


def _query(match: re.Match[str]) -> str:
    path, query = match["path"], match["query"]
    if _DICOMWEB.search(path):
        return f"{path}?{REDACTED}"
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [(name, value if name in API_PARAMETERS else REDACTED) for name, value in pairs]
    return f"{path}?" + "&".join(f"{quote(name, safe='')}={quote(value, safe='[]')}" for name, value in shown)


def _uid(match: re.Match[str]) -> str:
    return UID if len(match[0]) >= _MIN_UID_LENGTH else match[0]


def redact(text: str) -> str:
    """``text`` without what the policy above keeps out of logs."""
    for secret in _secrets:
        text = text.replace(secret, KEY)
    text = _URL_QUERY.sub(_query, text)
    text = _BEARER.sub(lambda m: f"{m[1]} {KEY}", text)
    text = _TOKEN.sub(KEY, text)
    text = _ASSIGNED.sub(lambda m: f"{m['name']}{m['eq']}{m['q']}{KEY}", text)
    text = _DICOM_VALUE.sub(lambda m: f"{m[1]}{REDACTED}", text)
    return _UID.sub(_uid, text)


def _redact_arg(arg: Any) -> Any:
    return redact(arg) if isinstance(arg, str) else arg


def scrub(record: logging.LogRecord) -> None:
    """Redact a record in place: its string arguments first (formats that unpack the arguments, like
    uvicorn's access log, keep working), then, if the whole message still differs once redacted (the
    format itself, an object's text, a URL built from several arguments), the message as one string;
    tracebacks too."""
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:  # a bad format: logging reports it when a handler formats the record
        message = redact(str(record.msg))
        record.msg, record.args = message, ()
    if (clean := redact(message)) != message:
        record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _redacting(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        scrub(record)
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    return factory


def install(*secrets: str | None) -> None:
    """Hold every log record of this process to the policy (idempotent), and :func:`protect` ``secrets``.

    Installed as the log record factory, so that it covers every logger and handler, those
    configured later included (uvicorn's and Celery's); forked processes (Celery's pool) inherit it.
    """
    protect(*secrets)
    logging.captureWarnings(True)
    current = logging.getLogRecordFactory()
    if not getattr(current, "redacts", False):
        logging.setLogRecordFactory(_redacting(current))
