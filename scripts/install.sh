#!/usr/bin/env bash
# Install what a fresh machine lacks: the Debian tools the tests use, a virtual environment in
# .venv, PyTorch, and this project with its dev extra. Safe to run again (it skips what is there).
#
#   LRC_TORCH   pip requirement for PyTorch (default torch==2.13.0; CPU build on the project's
#               machines, where that wheel lies on disk). On a GPU host set it to the CUDA build you want.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v dciodvfy >/dev/null 2>&1 || packages+=(dicom3tools)
# A real PACS for the gateway tests (tests/gateway): Orthanc and its DICOMweb plugin.
command -v Orthanc >/dev/null 2>&1 || packages+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || packages+=(orthanc-dicomweb)
# A real browser for the web page tests (tests/web, driven by Playwright; no browser download).
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

[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Install torch on its own first: asked for by another package, pip would pick the multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "${LRC_TORCH:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
