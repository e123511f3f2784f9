"""Fixtures of the gateway tests: a real Orthanc, ``lrc serve`` with a tiny model, ``lrc gateway`` processes.

The tiny model and the small CT come from the service tests' fixtures (imported, not copied).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from tests import dicom_factory
from tests.gateway.orthanc import Orthanc
from tests.service.harness import ADMIN_KEY, free_port, lrc_serve

GATEWAY_AET = "LRCGW"
MODALITY = "lrc"  # the gateway's name in Orthanc's DicomModalities
MOVE_AET = "LRCMOVE"  # the C-MOVE destination of `lrc pacs --move`, also in DicomModalities
MODEL = "gateway-test"
LRC = str(Path(sys.executable).parent / "lrc")


def child_env(**extra: str) -> dict[str, str]:
    """This environment without ``LRC_*`` settings (except the shared data), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRC_") or k == "LRC_SHARED_DATA"}
    env.update(PYTHONWARNINGS="ignore::DeprecationWarning", **extra)
    return env


def port_open(port: int) -> bool:
    """Whether something listens on ``127.0.0.1:port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes], kill: bool = False, wait: float = 30) -> None:
    """SIGTERM (or SIGKILL) a child and its group; wait for it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def gateway_port() -> int:
    """The gateway's DICOM port, registered in Orthanc as modality ``lrc``."""
    return free_port()


@pytest.fixture(scope="session")
def move_port() -> int:
    """Where `lrc pacs --move` listens for the C-MOVE's sub-operations, registered in Orthanc as ``MOVE_AET``."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory, gateway_port: int, move_port: int) -> Iterator[Orthanc]:
    """A running Orthanc with the gateway and a C-MOVE destination registered as modalities, DICOMweb enabled."""
    modalities = {MODALITY: (GATEWAY_AET, "127.0.0.1", gateway_port), "move": (MOVE_AET, "127.0.0.1", move_port)}
    server = Orthanc(tmp_path_factory.mktemp("orthanc"), free_port(), free_port(), modalities)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class LrcService:
    """``lrc serve`` as a child process, and a submitter key for the gateway."""

    url: str
    key: str
    log: Path
    key_file: Path  # the key, for --api-key-file (a key on the command line is visible in ps)


@pytest.fixture(scope="session")
def lrc_service(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LrcService]:
    """The embedded service (``lrc serve``) with the tiny model as its production model."""
    root = tmp_path_factory.mktemp("lrc-service")
    log = root / "serve.log"
    env = child_env(
        LRC_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
        LRC_STARTER_MODEL_DIR=str(tiny_model),
        LRC_STARTER_MODEL_NAME=MODEL,
        LRC_DEVICE="cpu",
        LRC_HEARTBEAT_S="1",
        LRC_STALE_AFTER_S="5",
        LRC_SWEEP_INTERVAL_S="2",
    )
    # The gateway only segments: ready once an inference worker beats.
    with lrc_serve(root / "data", env, log, frozenset({"infer"})) as (_, admin):
        created = admin.post("/v1/keys", json={"name": "gateway", "role": "submitter"}, timeout=30)
        assert created.status_code == 201, created.text
        key_file = root / "gateway.key"
        key_file.write_text(created.json()["token"] + "\n")
        yield LrcService(str(admin.base_url).rstrip("/"), created.json()["token"], log, key_file)


class GatewayProcess:
    """``lrc gateway`` as a child process."""

    def __init__(self, command: list[str], env: dict[str, str], data_dir: Path, port: int) -> None:
        self.command = command
        self.env = env
        self.data_dir = data_dir
        self.port = port
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        """Start; return once it answers C-ECHO."""
        from pynetdicom import AE
        from pynetdicom.sop_class import Verification

        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=sink, stderr=sink, start_new_session=True
            )
        ae = AE(ae_title="ORTHANC")
        ae.add_requested_context(Verification)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"lrc gateway exited with {self.process.returncode}: {self.log.read_text()[-3000:]}")
            if port_open(self.port):  # pynetdicom leaks the socket of a refused connection: knock first
                association = ae.associate("127.0.0.1", self.port, ae_title=GATEWAY_AET)
                if association.is_established:
                    association.release()
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"lrc gateway did not answer C-ECHO in {timeout} s: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (graceful) or SIGKILL (a crash)."""
        if self.process is not None:
            stop_process(self.process, kill)
        self.process = None


@pytest.fixture
def gateway_factory(
    lrc_service: LrcService, orthanc: Orthanc, gateway_port: int, tmp_path: Path
) -> Iterator[Callable[..., GatewayProcess]]:
    """``make(*flags, stow=False)``: a started gateway sending results to the Orthanc by C-STORE (or STOW-RS)."""
    started: list[GatewayProcess] = []

    def make(*flags: str, stow: bool = False, data_dir: Path | None = None) -> GatewayProcess:
        destination = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
        target = ["--stow-url", orthanc.dicomweb] if stow else ["--destination", destination]
        folder = data_dir or tmp_path / "gateway"
        command = [LRC, "-v", "gateway", "--ae-title", GATEWAY_AET, "--port", str(gateway_port), "--host", "127.0.0.1"]
        command += ["--api-url", lrc_service.url, "--data-dir", str(folder), *target, *flags]
        command += ["--api-key-file", str(lrc_service.key_file)]  # as a deployment mounts a secret
        env = child_env(
            LRC_GATEWAY_SERIES_TIMEOUT="1",
            LRC_GATEWAY_POLL_INTERVAL="0.2",
            LRC_GATEWAY_RETRY_BASE="0.5",
            LRC_GATEWAY_RETRY_MAX="2",
            LRC_GATEWAY_DIMSE_TIMEOUT="15",
        )
        process = GatewayProcess(command, env, folder, gateway_port)
        process.start()
        started.append(process)
        return process

    try:
        yield make
    finally:
        for process in started:
            process.stop()


def ct_series(shared_data: Path, folder: Path, count: int = 8, **options: object) -> list[Path]:
    """A CT series with fresh study and series UIDs, built from a real CT slice."""
    return dicom_factory.write_series(
        shared_data,
        folder,
        dicom_factory.line(count, spacing=5.0),
        size=64,
        pixel_spacing=(3.0, 3.0),
        study_uid=generate_uid(),
        **options,
    )
