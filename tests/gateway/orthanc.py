"""A real Orthanc PACS for the gateway tests: its own config, storage and free ports.

Orthanc and its DICOMweb plugin come from the Debian packages ``orthanc`` and ``orthanc-dicomweb``
(``scripts/test.sh`` installs them); nothing is installed at test time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

PLUGIN_PLACES = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")
INSTALL_HINT = "install it with scripts/test.sh (apt-get install orthanc orthanc-dicomweb)"


def orthanc_binary() -> str:
    """The Orthanc executable (Debian puts it in /usr/sbin)."""
    found = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(f"Orthanc is not installed: {INSTALL_HINT}")
    return found


def dicomweb_plugin() -> Path:
    """The DICOMweb plugin's shared library (from ``dpkg -L orthanc-dicomweb``)."""
    for place in PLUGIN_PLACES:
        found = sorted(Path(place).glob("libOrthancDicomWeb.so*"))
        if found:
            return found[0]
    raise RuntimeError(f"Orthanc's DICOMweb plugin is not installed: {INSTALL_HINT}")


class Orthanc:
    """One Orthanc process; :meth:`stop` and :meth:`start` again keep its data and ports."""

    def __init__(
        self, root: Path, http_port: int, dicom_port: int, modalities: dict[str, tuple[str, str, int]]
    ) -> None:
        self.root = root
        self.http_port = http_port
        self.dicom_port = dicom_port
        self.aet = "ORTHANC"
        self.url = f"http://127.0.0.1:{http_port}"
        self.dicomweb = f"{self.url}/dicom-web"
        self.log = root / "orthanc.log"
        storage = root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.config = root / "orthanc.json"
        config = {
            "Name": "lrc-tests",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": {name: list(node) for name, node in modalities.items()},
            "DicomAssociationCloseDelay": 0,
            "DicomScuTimeout": 30,
            "ConcurrentJobs": 1,
            "SaveJobs": False,
            "Plugins": [str(dicomweb_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
        }
        self.config.write_text(json.dumps(config, indent=1))
        self.binary = orthanc_binary()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start Orthanc; return once its REST API answers."""
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen([self.binary, str(self.config)], stdout=sink, stderr=sink)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/system", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not answer in {timeout} s: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop Orthanc (its storage stays)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    def get(self, path: str, **kwargs: Any) -> Any:
        """``GET`` on the REST API, as JSON."""
        response = httpx.get(f"{self.url}{path}", timeout=60, **kwargs)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        """``POST`` a JSON body (or bytes) on the REST API; the JSON answer."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = httpx.post(f"{self.url}{path}", content=content, timeout=120, **kwargs)
        response.raise_for_status()
        return response.json()

    def upload(self, paths: list[Path]) -> str:
        """Store DICOM files (``POST /instances``); the Orthanc id of their series."""
        series = {self.post("/instances", p.read_bytes())["ParentSeries"] for p in paths}
        assert len(series) == 1, series
        return series.pop()

    def send(self, modality: str, resource: str) -> dict[str, Any]:
        """C-STORE a resource to a modality (``POST /modalities/{id}/store``, synchronous)."""
        body = {"Resources": [resource], "Synchronous": True}
        answer: dict[str, Any] = self.post(f"/modalities/{modality}/store", body)
        return answer

    def instances(self, modality: str) -> list[dict[str, Any]]:
        """Every stored instance of a modality, with its tags (simplified)."""
        series = self.post("/tools/find", {"Level": "Series", "Query": {"Modality": modality}, "Expand": True})
        ids = [instance for item in series for instance in item["Instances"]]
        return [self.get(f"/instances/{ident}/tags?simplify") for ident in ids]

    def results_for(self, series_uid: str, modality: str = "SEG") -> list[dict[str, Any]]:
        """Stored instances of ``modality`` that reference the series ``series_uid``."""
        return [
            tags
            for tags in self.instances(modality)
            if any(ref.get("SeriesInstanceUID") == series_uid for ref in tags.get("ReferencedSeriesSequence", []))
            or any(
                ref.get("SeriesInstanceUID") == series_uid
                for frame in tags.get("ReferencedFrameOfReferenceSequence", [])
                for study in frame.get("RTReferencedStudySequence", [])
                for ref in study.get("RTReferencedSeriesSequence", [])
            )
        ]

    def clear(self) -> None:
        """Delete every patient."""
        for patient in self.get("/patients"):
            httpx.delete(f"{self.url}/patients/{patient}", timeout=60).raise_for_status()
