"""``lrc gateway``: settings checked before anything starts; a light process (no torch, no ``app``)."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app as cli


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
        "import sys, cli, gateway.runner; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'monai', 'core', 'app', 'worker', 'celery'}))"
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


def test_the_api_key_comes_from_a_file_or_the_environment_and_the_flag_is_warned_about(tmp_path: Path):
    runner = CliRunner()
    start = ["gateway", "--data-dir", str(tmp_path)]  # no destination: stops at the settings check
    flagged = runner.invoke(cli, [*start, "--api-key", "lrc_secret-on-the-command-line"])
    assert flagged.exit_code == 2
    assert "--api-key shows the key to every user of this machine (ps)" in flagged.stderr
    by_env = runner.invoke(cli, start, env={"LRC_GATEWAY_API_KEY": "lrc_secret-in-the-environment"})
    assert by_env.exit_code == 2
    assert "--api-key shows" not in by_env.stderr
    key_file = tmp_path / "gateway.key"
    key_file.write_text("lrc_secret-in-a-file\n")
    both = runner.invoke(cli, [*start, "--api-key", "x", "--api-key-file", str(key_file)])
    assert both.exit_code == 2
    assert "not both" in both.stderr
    missing = runner.invoke(cli, [*start, "--api-key-file", str(tmp_path / "none.key")])
    assert missing.exit_code == 2
    assert "cannot read the API key file" in missing.stderr
    key_file.write_text("\n")
    empty = runner.invoke(cli, [*start, "--api-key-file", str(key_file)])
    assert empty.exit_code == 2
    assert "is empty" in empty.stderr


@pytest.mark.parametrize("way", ["file", "environment", "flag"])
def test_every_way_of_giving_the_key_reaches_the_service(way: str, tmp_path: Path):
    """``lrc pacs push`` against a stand-in service that records the bearer token it is sent."""
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    key = f"lrc_key-given-by-{way}"
    (tmp_path / "key").write_text(key + "\n")
    given = {"file": ["--api-key-file", str(tmp_path / "key")], "environment": [], "flag": ["--api-key", key]}[way]
    env = {"LRC_GATEWAY_API_KEY": key} if way == "environment" else {}
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        arguments = ["pacs", "push", "s1", "--destination", "P@127.0.0.1:104", "--wait", "0", "--api-url", url]
        pushed = CliRunner().invoke(cli, [*arguments, *given], env=env)
        server.shutdown()
    assert pushed.exit_code == 1, pushed.output  # refused by the stand-in
    assert seen == [f"Bearer {key}"]
    assert ("--api-key shows" in pushed.stderr) == (way == "flag")
