"""Inference starts without importing MONAI (and with it SciPy's signal/stats and matplotlib).

``import monai`` took ~3 s of every ``lrc segment`` and inference worker start on 2 CPU cores
(15 s on a cold GPU machine). Each check runs in a fresh interpreter: this test process has MONAI
loaded by other tests.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("monai", "scipy.signal", "scipy.stats", "matplotlib")


@pytest.mark.parametrize(
    "modules",
    [
        "lrc.infer",
        "lrc.infer, lrc.io.seg",
        # Everything `lrc segment` imports: the CLI, then the predictor and the readers and writers.
        "lrc.cli, lrc.infer, lrc.io, lrc.io.seg, lrc.io.rtstruct, lrc.model_dirs",
    ],
)
def test_inference_imports_leave_out_monai(modules: str):
    code = (
        f"import sys, {modules}\n"
        f"print(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_model_card_versions_leave_out_monai():
    # every saved model records MONAI's version; reading it from the package metadata imports nothing
    code = (
        "import sys\nfrom importlib.metadata import version\nfrom lrc.model_dirs.card import software_versions\n"
        "v = software_versions()\nprint(v['monai'] == version('monai'), 'monai' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False"]
