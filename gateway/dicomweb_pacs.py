"""Query and retrieve from a PACS by DICOMweb: QIDO-RS for series, WADO-RS to bring them here.

The DICOMweb counterpart of :class:`gateway.pacs.DimsePacs` for ``lrc pacs --dicomweb URL``: no AE
title to register at the PACS, only HTTP(S) to its DICOMweb base URL (Orthanc: ``.../dicom-web``).
A retrieved series is streamed part by part to files (``multipart/related``), never held whole.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from email.message import Message
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import pydicom
from pydicom import Dataset
from python_multipart.multipart import MultipartParser

from gateway.inbox import valid_uid
from gateway.pacs import PacsError, SeriesMatch, date_range, series_match

log = logging.getLogger(__name__)
SEARCH_FIELDS = "StudyDate,SeriesDescription,BodyPartExamined,NumberOfSeriesRelatedInstances,Modality"
ACCEPT_INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*'
PAGE = 500  # results asked for a page; a PACS may give fewer (its own cap) with more to come


class DicomwebPacs:
    """A PACS reached at a DICOMweb base URL (optionally with headers, e.g. ``Authorization``)."""

    def __init__(self, base_url: str, timeout: float = 120, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = headers or {}

    def __str__(self) -> str:
        return self.base_url

    def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.get(f"{self.base_url}{path}", headers=self.headers, timeout=self.timeout, **kwargs)
        except httpx.TransportError as exc:
            raise PacsError(f"{self.base_url} could not be reached ({type(exc).__name__}: {exc})") from exc
        if not response.is_success:
            raise PacsError(f"GET {self.base_url}{path}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def find_series(
        self,
        modality: str | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
        description: str | None = None,
        study_uid: str | None = None,
    ) -> list[SeriesMatch]:
        """Series matching every filter given (QIDO-RS; ``description``: wildcards ``*`` and ``?``)."""
        params = {"includefield": SEARCH_FIELDS, "limit": str(PAGE)}
        for key, value in (
            ("Modality", modality),
            ("StudyDate", date_range(since, until)),
            ("SeriesDescription", description),
        ):
            if value:
                params[key] = value
        path = f"/studies/{study_uid}/series" if study_uid else "/series"
        return self._all_pages(path, params)

    def _all_pages(self, path: str, params: dict[str, str]) -> list[SeriesMatch]:
        """Every page of a QIDO-RS search for series, asked for until one comes back empty.

        A page shorter than the limit asked for is no sign of the end: a PACS may cap its pages
        below it (100 or 200 are common) without the ``Warning`` header PS3.18 asks for (Orthanc
        1.10 cut its answers without one). The offset is the number of results received; a series
        received twice (one stored meanwhile shifts the others a place) is kept once.

        Raises:
            PacsError: a page brought only series already received: the PACS ignores ``offset``.
                Paging on would loop for ever, and stopping would return a cohort that may be partial
                (a first page that was the whole answer looks the same as one cut at the PACS's cap).
        """
        found: dict[str, SeriesMatch] = {}
        received = 0
        while True:
            response = self._get(f"{path}?{_query({**params, 'offset': str(received)})}")
            items = response.json() if response.status_code != 204 and response.content else []
            if not items:
                return list(found.values())
            page = [series_match(Dataset.from_json(item)) for item in items]
            if all(match.series_uid in found for match in page):
                raise PacsError(
                    f"QIDO-RS at {self.base_url} answered offset={received} with {len(page)} series already "
                    f"received: it ignores the offset, so its answer cannot be paged and the {len(found)} series "
                    "found may be part of the cohort only; search it by C-FIND (--pacs) instead"
                )
            received += len(page)
            found.update((match.series_uid, match) for match in page if match.series_uid not in found)

    def get_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        """WADO-RS of one series into ``folder`` (one file per SOP Instance UID); the files received."""
        folder.mkdir(parents=True, exist_ok=True)
        url = f"{self.base_url}/studies/{study_uid}/series/{series_uid}"
        headers = {**self.headers, "Accept": ACCEPT_INSTANCES}
        try:
            with httpx.stream("GET", url, headers=headers, timeout=self.timeout) as response:
                if not response.is_success:
                    response.read()
                    raise PacsError(
                        f"WADO-RS of series {series_uid}: HTTP {response.status_code} {response.text[:200]}"
                    )
                parts = _receive_parts(response, folder)
        except httpx.TransportError as exc:
            raise PacsError(f"WADO-RS of series {series_uid}: {type(exc).__name__}: {exc}") from exc
        received = [_named(part, folder) for part in parts]
        if not received:
            raise PacsError(f"WADO-RS of series {series_uid} at {self.base_url}: no instances")
        return received


def _query(params: dict[str, str]) -> str:
    """A QIDO-RS query string with the wildcards ``*`` and ``?`` as they are, and a space as ``?``.

    Orthanc (1.12) matches the undecoded value: ``%2A`` is not a wildcard and ``%20`` not a space.
    ``?`` matches the space (and any other single character) everywhere.
    """
    return "&".join(f"{quote(k)}={quote(v.replace(' ', '?'), safe='*?,-')}" for k, v in params.items())


def _boundary(content_type: str) -> str:
    message = Message()
    message["Content-Type"] = content_type
    boundary = message.get_param("boundary")
    if message.get_content_type() != "multipart/related" or not isinstance(boundary, str):
        raise PacsError(f"WADO-RS answered {content_type!r}, not multipart/related with a boundary")
    return boundary


def _receive_parts(response: httpx.Response, folder: Path) -> list[Path]:
    """Each part of a ``multipart/related`` body written to a temporary file in ``folder``."""
    parts: list[Path] = []
    current: list[IO[bytes]] = []

    def begin() -> None:
        sink = tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False)  # noqa: SIM115 (end() closes it)
        current.append(sink)
        parts.append(Path(sink.name))

    def data(chunk: bytes, start: int, end: int) -> None:
        current[-1].write(chunk[start:end])

    def end() -> None:
        current.pop().close()

    parser = MultipartParser(
        _boundary(response.headers.get("content-type", "")),
        {"on_part_begin": begin, "on_part_data": data, "on_part_end": end},
    )
    try:
        for chunk in response.iter_bytes():
            parser.write(chunk)
        parser.finalize()
    finally:
        for sink in current:
            sink.close()
    return parts


def _named(part: Path, folder: Path) -> Path:
    """A received part renamed to ``<SOPInstanceUID>.dcm``."""
    try:
        sop_uid = str(pydicom.dcmread(part, stop_before_pixels=True).SOPInstanceUID)
    except Exception as exc:  # pydicom raises many kinds on a broken part
        raise PacsError(f"a WADO-RS part is not a DICOM instance ({type(exc).__name__}: {exc})") from exc
    if not valid_uid(sop_uid):
        raise PacsError(f"a WADO-RS instance has an invalid SOP Instance UID {sop_uid!r}")
    return part.rename(folder / f"{sop_uid}.dcm")
