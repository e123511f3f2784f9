"""docker-compose.yml: the scaled deployment is complete and consistent with the settings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


SERVICE = ("api", "gpu-infer", "gpu-train", "cpu-worker")


def test_services_health_checks_restarts_and_volumes(compose: dict):
    services = compose["services"]
    assert set(services) == {"redis", "postgres", *SERVICE, "gateway"}
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service["restart"] == "unless-stopped", name
    for name in SERVICE:
        assert services[name]["volumes"] == ["blobs:/data"], name
    # The API is healthy when it answers: /readyz waits for the workers, which start after it.
    assert "/healthz" in services["api"]["healthcheck"]["test"][-1]


def test_each_queue_has_a_worker_and_gpu_workers_keep_their_names(compose: dict):
    services = compose["services"]
    queues = {}
    for name in ("gpu-infer", "gpu-train", "cpu-worker"):
        command = services[name]["command"]
        queues[name] = command[command.index("--queues") + 1]
    assert queues == {"gpu-infer": "infer", "gpu-train": "train", "cpu-worker": "io"}
    for name in ("gpu-infer", "gpu-train"):
        service = services[name]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert (devices[0]["driver"], devices[0]["device_ids"]) == ("nvidia", ["0"])
        assert "gpu" in devices[0]["capabilities"]
        worker = service["command"][service["command"].index("--name") + 1]
        assert service["hostname"] == worker  # the same name after a restart: its jobs come back at once


def test_environment_names_are_settings(compose: dict):
    fields = {f"LRC_{name.upper()}" for name in Settings.model_fields}
    for name in SERVICE:
        assert set(compose["services"][name]["environment"]) <= fields, name


def test_gateway_service(compose: dict, monkeypatch: pytest.MonkeyPatch):
    from gateway.settings import GatewaySettings

    gateway = compose["services"]["gateway"]
    environment = {k: v.split(":-", 1)[-1].rstrip("}") for k, v in gateway["environment"].items()}  # the defaults
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = GatewaySettings()  # the defaults of the file are valid settings, and nothing is left unknown
    assert {f"LRC_GATEWAY_{name.upper()}" for name in GatewaySettings.model_fields} >= set(environment)
    assert settings.api_url == "http://api:8000"
    assert gateway["ports"] == [f"{settings.port}:{settings.port}"]
    assert gateway["volumes"] == [f"gateway:{settings.data_dir}"]
    assert gateway["depends_on"]["api"]["condition"] == "service_healthy"


def _compose() -> list[str]:
    """``docker compose`` where the plugin exists, else Debian's ``docker-compose`` (scripts/test.sh)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")


def test_docker_compose_config():
    result = subprocess.run([*_compose(), "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
