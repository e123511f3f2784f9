"""Process boundaries: the API starts without torch or MONAI; the lrc command line (the library's and the whole)
without the service stack."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("app.main", ("torch", "monai")),
        ("core.celery_app", ("torch", "monai")),
        ("lrc.cli", ("fastapi", "celery", "sqlalchemy", "torch")),
        ("cli", ("fastapi", "celery", "sqlalchemy", "torch")),
    ],
)
def test_imports_stay_light(module: str, forbidden: tuple[str, ...]):
    code = f"import sys, {module}; print(','.join(m for m in {forbidden!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"
