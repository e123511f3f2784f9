"""Schemathesis against the API's own OpenAPI document: a real API (uvicorn, real HTTP) on a fresh
PostgreSQL database, called with an admin key. Every generated request must get a 2xx, or a 4xx
``application/problem+json`` (DICOMweb may answer in DICOM JSON); never a 5xx, but for ``/readyz``'s
"not ready" (no worker runs beside this API).

Both of schemathesis' generation modes run: positive (requests the document allows) and negative
(requests it forbids: wrong types, missing fields, out-of-range values). Bounded: ``MAX_EXAMPLES``
per operation and mode, derandomized (the same requests on every run).
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from core.settings import Settings
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service
from tests.service.postgres import postgres_database

MAX_EXAMPLES = 12
ANSWERS: collections.Counter[int] = collections.Counter()  # status -> requests (bench/RELIABILITY.md)
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("fuzz-api")
    with postgres_database() as url:
        settings = Settings(
            data_dir=root / "data", database_url=url, bootstrap_admin_key=ADMIN_KEY, max_upload_bytes=1 << 20, **FAST
        )
        with running_service(settings, (), root) as service:
            yield service
    log.info("schemathesis: %d requests, statuses %s", sum(ANSWERS.values()), dict(sorted(ANSWERS.items())))


@schemathesis.serializer('multipart/related; type="application/dicom"')
def _related(ctx: object, value: object) -> bytes:
    """STOW-RS bodies: the generated value as the one part of a multipart/related body (boundary ``fuzz``)."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"--fuzz\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--fuzz--\r\n"


def _check(case: schemathesis.Case) -> None:
    """One generated request: a 2xx, or a 4xx problem document (DICOM JSON on DICOMweb); never a 5xx."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    if case.media_type and case.media_type.startswith("multipart/related"):
        headers["Content-Type"] = f"{case.media_type}; boundary=fuzz"
    response = case.call(headers=headers, timeout=60)
    ANSWERS[response.status_code] += 1
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    if case.formatted_path == "/readyz" and response.status_code == 503:
        # Readiness' documented "not ready": this service runs no worker, so its queues have no consumer.
        assert response.json()["status"] == "not ready", where
        return
    assert response.status_code < 500, where
    if response.status_code >= 400:
        kind = (response.headers.get("content-type") or [""])[0]  # schemathesis: name -> list of values
        assert kind.startswith(("application/problem+json", "application/dicom+json")), where


def test_no_generated_request_gets_a_5xx(fuzzed_service: Service) -> None:
    # One hypothesis run per operation, driven here: schemathesis' pytest plugin does not run under pytest 9.
    schema = schemathesis.openapi.from_url(f"{fuzzed_service.url}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for found, mode in itertools.product(schema.get_all_operations(), schemathesis.GenerationMode):
        operation = found.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failing request is reported
        )
        def run(case: schemathesis.Case) -> None:
            _check(case)

        try:
            run()
        except AssertionError as exc:
            failures[f"{operation.label} ({mode.value})"] = str(exc).splitlines()[0]
        except Unsatisfiable:  # negative mode on an operation without parameters or body: nothing to break
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    log.info("schemathesis: %d operations x generation modes", operations)
    assert operations >= 60
    assert not failures, "\n".join(f"{label}: {why}" for label, why in failures.items())
