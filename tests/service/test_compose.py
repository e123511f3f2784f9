"""docker-compose.yml: the scaled deployment is complete and consistent with the settings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_health_checks_and_volumes(compose: dict):
    services = compose["services"]
    assert set(services) == {"redis", "postgres", "api", "gpu-worker", "cpu-worker", "gateway"}
    for name, service in services.items():
        assert "healthcheck" in service, name
    for name in ("api", "gpu-worker", "cpu-worker"):
        assert services[name]["volumes"] == ["blobs:/data"], name
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert "--queues" in services["gpu-worker"]["command"]


def test_environment_names_are_settings(compose: dict):
    fields = {f"LRC_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "gpu-worker", "cpu-worker"):
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
    """``docker compose`` where the plugin exists, else Debian's ``docker-compose`` (scripts/install.sh)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")


def test_docker_compose_config():
    result = subprocess.run([*_compose(), "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
