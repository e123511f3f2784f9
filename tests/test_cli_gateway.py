"""``lrc gateway``: settings checked before anything starts; a light process (no torch, no ``app``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from lrc.cli import app as cli


def test_settings_are_checked_before_start(tmp_path: Path):
    runner = CliRunner()
    nowhere = runner.invoke(cli, ["gateway", "--data-dir", str(tmp_path)])
    assert nowhere.exit_code == 2
    assert "results need somewhere to go" in nowhere.output
    bad = runner.invoke(cli, ["gateway", "--destination", "PACS:104", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 2
    assert "AE@HOST:PORT" in bad.output
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - Modality: CT\n")
    no_model = runner.invoke(
        cli, ["gateway", "--destination", "P@h:104", "--rules", str(rules), "--data-dir", str(tmp_path)]
    )
    assert no_model.exit_code == 2
    assert "'model'" in no_model.output


def test_the_gateway_imports_neither_torch_nor_the_service():
    code = (
        "import sys, lrc.cli, gateway.runner; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'monai', 'app', 'worker', 'celery'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
