#!/usr/bin/env bash
# Install what `lrc serve` needs: a virtual environment in .venv, PyTorch, and this project.
# No system package: the embedded service runs on SQLite, a local blob folder and an on-disk queue.
# Safe to run again (it skips what is there). The test command (scripts/test.sh) adds the tests' tools.
#
#   LRC_TORCH   pip requirement for PyTorch (default torch==2.13.0; CPU build on the project's
#               machines, where that wheel lies on disk). On a GPU host set it to the CUDA build you want.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Install torch on its own first: asked for by another package, pip would pick the multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "${LRC_TORCH:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e .
