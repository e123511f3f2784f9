"""The bad-input corpus through the two DICOM doors: STOW-RS (``POST /dicomweb/studies`` of a
running ``lrc serve``) and C-STORE into a running ``lrc gateway``.

STOW-RS: every hostile instance is listed in the answer's FailedSOPSequence (409 when nothing was
stored, 202 beside good instances), or the whole request gets a 4xx problem document; never a 5xx.
C-STORE: every hostile instance a DICOM sender can transmit gets a failure status (0xA000-0xCFFF),
or its presentation context is refused at association; the gateway keeps running, keeps nothing of
them, and still stores a good series afterwards.
"""

from __future__ import annotations

import collections
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from gateway import scp
from tests.gateway.conftest import GATEWAY_AET, LRC, GatewayProcess, child_env
from tests.reliability import corpus, corpus_bounds
from tests.reliability.conftest import UPLOAD_LIMIT, Served
from tests.service.harness import ADMIN_KEY, free_port
from tests.service.helpers import series_with_uids

FAILED, REFERENCED = "00081198", "00081199"
DICOM_JSON = "application/dicom+json"
PROBLEM = "application/problem+json"
log = logging.getLogger(__name__)  # the figures of bench/RELIABILITY.md: pytest --log-cli-level=INFO


@pytest.fixture(scope="module")
def instances(shared_data: Path, ct_nifti: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    """``(case id, [file contents])`` of every DICOM, archive and NIfTI case of the corpus."""
    folder = tmp_path_factory.mktemp("stow-corpus")
    cases = [
        *corpus.dicom_cases(shared_data, folder),
        *corpus.archive_cases(shared_data, folder),
        *corpus.nifti_cases(ct_nifti[0]),
        *corpus_bounds.dicom_cases(shared_data, folder),
        *corpus_bounds.archive_cases(shared_data, folder),
        *corpus_bounds.nifti_cases(ct_nifti[0]),
    ]
    return [(case.id, [part[1][1] for part in case.kwargs["files"]]) for case in cases if "files" in case.kwargs]


def _related(parts: list[tuple[str, bytes]], boundary: str | None = None) -> tuple[bytes, str]:
    boundary = boundary or uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + data + b"\r\n" for kind, data in parts)
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def _stow(served: Served, body: bytes, content_type: str) -> httpx.Response:
    return served.client.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type}, timeout=120)


def _stow_verdict(response: httpx.Response, parts: int) -> str | None:
    """Why the answer is not a per-instance failure of all ``parts`` (or a 4xx problem document)."""
    kind = response.headers.get("content-type", "")
    if response.status_code == 409 and kind == DICOM_JSON:
        failed = response.json().get(FAILED, {}).get("Value", [])
        stored = response.json().get(REFERENCED, {}).get("Value", [])
        if len(failed) == parts and not stored:
            return None
        return f"409 with {len(failed)} failed and {len(stored)} stored of {parts}"
    if 400 <= response.status_code < 500 and kind == PROBLEM and response.json().get("detail"):
        return None
    return f"{response.status_code} {kind}: {response.text[:200]}"


def test_stow_rs_fails_every_hostile_instance(served: Served, instances, shared_data: Path, tmp_path: Path):
    wrong: dict[str, str] = {}
    statuses: collections.Counter[int] = collections.Counter()
    for case_id, contents in instances:
        body, content_type = _related([("application/dicom", data) for data in contents])
        try:
            response = _stow(served, body, content_type)
        except httpx.TransportError as exc:
            wrong[case_id] = f"no answer: {exc!r}"
            continue
        statuses[response.status_code] += 1
        if (why := _stow_verdict(response, len(contents))) is not None:
            wrong[case_id] = why
    good = [p.read_bytes() for p in series_with_uids(shared_data, tmp_path / "good", count=3)]
    bad = [data for _, contents in instances[:20] for data in contents]
    body, content_type = _related([("application/dicom", data) for data in [*good, *bad]])
    mixed = _stow(served, body, content_type)
    malformed = {
        "form-data": (_related([("application/dicom", good[0])])[0], "multipart/form-data; boundary=x"),
        "no-boundary": (b"--x\r\n\r\n", 'multipart/related; type="application/dicom"'),
        "wrong-boundary": (_related([("application/dicom", good[0])], "aaa")[0], _related([], "bbb")[1]),
        "unterminated": (_related([("application/dicom", good[0])], "b")[0][:-8], _related([], "b")[1]),
        "empty": (b"", _related([], "b")[1]),
        "json-part": _related([("application/json", b'{"00100010": "x"}')]),
        "over-the-limit": _related([("application/dicom", b"\0" * (UPLOAD_LIMIT + 1))]),
    }
    for name, (body, content_type) in malformed.items():
        response = _stow(served, body, content_type)
        statuses[response.status_code] += 1
        if not 400 <= response.status_code < 500:
            wrong[f"http/{name}"] = f"{response.status_code}: {response.text[:200]}"

    assert len(instances) >= 50
    assert not wrong, "\n".join(f"{name}: {why}" for name, why in wrong.items())
    assert mixed.status_code == 202, mixed.text
    assert len(mixed.json()[REFERENCED]["Value"]) == len(good)
    assert len(mixed.json()[FAILED]["Value"]) == len(bad)
    assert served.client.get("/healthz").status_code == 200
    assert "unhandled error" not in served.log.read_text(errors="replace")
    log.info("STOW-RS: %d corpus requests, %d malformed bodies: %s", len(instances), len(malformed), dict(statuses))


@pytest.fixture(scope="module")
def gateway(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """``lrc gateway`` forwarding to the running service; its PACS destination is a closed port."""
    folder = tmp_path_factory.mktemp("gateway") / "data"
    port = free_port()
    command = [LRC, "-v", "gateway", "--ae-title", GATEWAY_AET, "--port", str(port), "--host", "127.0.0.1"]
    command += ["--api-url", str(served.client.base_url), "--data-dir", str(folder)]
    command += ["--destination", f"PACS@127.0.0.1:{free_port()}"]
    env = child_env(LRC_GATEWAY_API_KEY=ADMIN_KEY, LRC_GATEWAY_SERIES_TIMEOUT="1", LRC_GATEWAY_POLL_INTERVAL="0.2")
    process = GatewayProcess(command, env, folder, port)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _send(port: int, path: Path) -> int | str:
    """C-STORE the file's bytes as they are (no decoding on our side): the status, or why it was not sent."""
    ae = AE(ae_title="TESTSCU")
    for syntax in scp.TRANSFER_SYNTAXES:
        ae.add_requested_context(CTImageStorage, syntax)
    association = ae.associate("127.0.0.1", port, ae_title=GATEWAY_AET)
    assert association.is_established
    try:
        status = association.send_c_store(path)
    except Exception as exc:  # pydicom, on our side, cannot read the file meta to pick a context (many types)
        return f"not sendable: {type(exc).__name__}"
    finally:
        association.release()
    return int(status.Status) if "Status" in status else "no status"


def test_c_store_fails_every_hostile_instance(gateway: GatewayProcess, shared_data: Path, tmp_path: Path):
    cases = corpus.dicom_cases(shared_data, tmp_path / "corpus") + corpus_bounds.dicom_cases(shared_data, tmp_path)
    outcomes: dict[str, int | str] = {}
    for number, case in enumerate(cases):
        path = tmp_path / "send" / f"{number}.dcm"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(case.kwargs["files"][0][1][1])
        outcomes[case.id] = _send(gateway.port, path)
    good = series_with_uids(shared_data, tmp_path / "good", count=3)
    good_statuses = [_send(gateway.port, p) for p in good]

    sent = {k: v for k, v in outcomes.items() if isinstance(v, int)}
    accepted = {k: hex(v) for k, v in sent.items() if not 0xA000 <= v <= 0xCFFF}
    assert not accepted, f"hostile instances acknowledged: {accepted}"
    assert len(sent) >= 15, outcomes  # the rest cannot even be read by a sender (19 of the 38 are sent)
    assert gateway.process is not None
    assert gateway.process.poll() is None, gateway.log.read_text()[-3000:]
    assert good_statuses == [0x0000] * len(good)
    series_uid = str(pydicom.dcmread(good[0]).SeriesInstanceUID)
    kept = [p for p in gateway.data_dir.rglob("*.dcm") if series_uid not in str(p)]
    assert not kept, kept  # nothing of the hostile instances on disk
    assert not list((gateway.data_dir / "tmp").iterdir())
    unsent = collections.Counter(v for v in outcomes.values() if isinstance(v, str))
    refused = dict(collections.Counter(sent.values()))
    log.info("C-STORE: %d cases, %d sent: %s; not sendable: %s", len(cases), len(sent), refused, dict(unsent))
