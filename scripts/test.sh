#!/usr/bin/env bash
# Install what the service and its tests need on a fresh Debian machine, then lint, type-check, check the
# layering (import-linter's contracts in pyproject.toml) and run the whole test suite (what CI's .ci/run
# calls). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests' real peers and tools (Debian packages), installed where missing:
packages=()
command -v dciodvfy >/dev/null 2>&1 || packages+=(dicom3tools)  # validates the DICOM objects we write
# A real PACS for the gateway tests (tests/gateway): Orthanc and its DICOMweb plugin.
command -v Orthanc >/dev/null 2>&1 || packages+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || packages+=(orthanc-dicomweb)
# A real browser for the web page tests (tests/app/web, driven by Playwright; no browser download).
[ -x /usr/bin/chromium ] || packages+=(chromium)
# Scaled mode's services (tests/service/test_scaled.py uses running ones, or starts its own) and the
# compose file check (tests/service/test_compose.py: `docker compose config`, or docker-compose).
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || packages+=(postgresql)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || packages+=(docker-compose)
if ((${#packages[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

bash scripts/install.sh
.venv/bin/python -m pip install -q -e ".[dev]"
. .venv/bin/activate
ruff check .
ruff format --check .
mypy
lint-imports
python -m pytest "$@"
