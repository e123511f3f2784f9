"""QIDO-RS paging of :class:`gateway.dicomweb_pacs.DicomwebPacs` against PACSs that cap their pages.

Orthanc's own cap (``LimitFindResults``) truncates the whole search, not a page: an offset past
the cap finds nothing, so no client can page past it (tried with Orthanc 1.10.1 and its DICOMweb
plugin 1.7). A DICOMweb front that caps each page (as many do, at 100 or 200) is a small real HTTP
server here: it forwards every QIDO-RS request to the real Orthanc with the limit lowered to
:data:`CAP`, and answers with Orthanc's own answer.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pydicom
import pytest

from gateway.dicomweb_pacs import DicomwebPacs
from gateway.pacs import PacsError
from tests.gateway.orthanc import Orthanc
from tests.gateway.test_pacs import labelled_series

CAP = 2  # results per page of the capping front


@dataclass
class Front:
    """A DICOMweb base URL, and the query arguments of each request it received."""

    base: str
    received: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def capped_front(orthanc: Orthanc, ignore_offset: bool = False) -> Iterator[Front]:
    """A DICOMweb front to ``orthanc`` that gives at most :data:`CAP` results a page.

    With ``ignore_offset`` it drops the offset, as a PACS that does not page would: every page is the first.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    front = Front(f"http://127.0.0.1:{server.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            args = dict(parse_qsl(url.query, keep_blank_values=True))
            front.received.append(dict(args))
            args["limit"] = str(min(int(args.get("limit", CAP)), CAP))
            if ignore_offset:
                args.pop("offset", None)
            # Orthanc reads the wildcards as they are: sent unencoded, as the client sent them.
            answer = httpx.get(f"{orthanc.dicomweb}{url.path}?{urlencode(args, safe='*?,')}", timeout=30)
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "application/dicom+json"))
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a failing test shows what it received."""

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield front
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_every_page_of_a_capped_pacs(orthanc: Orthanc, shared_data: Path, tmp_path: Path):
    token = uuid.uuid4().hex[:8]
    wanted = set()
    for i in range(5):  # 5 series: pages of 2, 2, 1, then an empty one
        files = labelled_series(shared_data, tmp_path / f"s{i}", f"Capped {token}", "20200101", count=1)
        orthanc.upload(files)
        wanted.add(str(pydicom.dcmread(files[0]).SeriesInstanceUID))

    with capped_front(orthanc) as front:
        found = DicomwebPacs(front.base).find_series(modality="CT", description=f"*{token}*")
    assert sorted(m.series_uid for m in found) == sorted(wanted)
    assert [args["offset"] for args in front.received] == ["0", "2", "4", "5"]


@pytest.mark.timeout(60)
def test_a_pacs_that_ignores_the_offset(orthanc: Orthanc, shared_data: Path, tmp_path: Path):
    token = uuid.uuid4().hex[:8]
    for i in range(3):
        orthanc.upload(labelled_series(shared_data, tmp_path / f"s{i}", f"Unpaged {token}", "20200101", count=1))

    # Not a partial cohort, and not an endless loop:
    with capped_front(orthanc, ignore_offset=True) as front, pytest.raises(PacsError, match="ignores the offset"):
        DicomwebPacs(front.base).find_series(modality="CT", description=f"*{token}*")
    assert len(front.received) == 2  # the second page repeated the first: stopped there
