"""``lrc gateway``: settings checked before anything starts; a light process (no torch, no ``app``)."""

from __future__ import annotations

import json
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


def test_outbox_command_lists_and_rearms_failed_steps(tmp_path: Path):
    from gateway.outbox import NewStep, Outbox

    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.add("b1", [NewStep("upload", "1.2", {}), NewStep("deliver", "s:dicom-seg", {})])
    upload, deliver = outbox.due()
    outbox.finish(upload, {})
    outbox.fail(deliver, "the PACS refused it")
    outbox.close()

    runner = CliRunner()
    listed = runner.invoke(cli, ["gateway-outbox", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    (line,) = listed.stdout.splitlines()
    assert json.loads(line)["state"] == "failed"
    assert json.loads(line)["last_error"] == "the PACS refused it"
    rearmed = runner.invoke(cli, ["gateway-outbox", "--data-dir", str(tmp_path), "--retry-failed", "--all"])
    assert rearmed.exit_code == 0
    assert [json.loads(x)["state"] for x in rearmed.stdout.splitlines()] == ["done", "pending"]
    missing = runner.invoke(cli, ["gateway-outbox", "--data-dir", str(tmp_path / "nothing")])
    assert missing.exit_code == 2


def test_pacs_commands_need_one_way_to_the_pacs(tmp_path: Path):
    runner = CliRunner(env={"LRC_GATEWAY_API_KEY": "k"})
    api = ["--api-url", "http://127.0.0.1:9"]
    neither = runner.invoke(cli, ["pacs", "import", *api])
    assert neither.exit_code == 2
    assert "exactly one of --pacs" in neither.output
    both = runner.invoke(cli, ["pacs", "find", "--pacs", "P@h:104", "--dicomweb", "http://h/dicom-web"])
    assert both.exit_code == 2
    move_by_web = runner.invoke(cli, ["pacs", "import", "--dicomweb", "http://h/dicom-web", "--move", "11113", *api])
    assert move_by_web.exit_code == 2
    assert "--move is for a DIMSE PACS" in move_by_web.output
    unreachable = runner.invoke(cli, ["pacs", "find", "--dicomweb", "http://127.0.0.1:9/dicom-web"])
    assert unreachable.exit_code == 1
    assert "could not be reached" in unreachable.output
    no_mapping = runner.invoke(
        cli, ["pacs", "push", "s1", "--destination", "P@h:104", "--mapping", str(tmp_path / "none.sqlite"), *api]
    )
    assert no_mapping.exit_code == 2
    assert "no pseudonym mapping" in no_mapping.output
