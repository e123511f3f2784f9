"""A user's mistakes on every ``lrc`` command: a clear message and exit code, never a traceback.

Each case is (command line, exit code, a fragment of the message). An ``error: ...`` line on stderr
is the command's own refusal; typer's usage box (``Invalid value for '--x'``) is an option refused
while the command line is parsed. Both exit with 2 for a mistake; 1 is a failure of the world (a
port in use, a key that is not there). Cases stop before any training or inference runs.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import lrc
from cli import app

runner = CliRunner()
STARTER = Path(lrc.__file__).parent / "assets" / "starter_ct_abdomen"
BOX = re.compile(r"[│╭╮╰╯─]+")
USAGE = "Invalid value"


@pytest.fixture(scope="module")
def ws(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs a user gets wrong, made from the real data: truncated copies, files that are not what
    their name says, manifests and model directories malformed one way each."""
    ws = tmp_path_factory.mktemp("mistakes")
    nifti = shared_data / "nifti" / "totalseg_ct_abdomen"
    ct_slice = shared_data / "dicom" / "seg_dcmqi" / "ct-3slice" / "01.dcm"
    (ws / "trunc.nii.gz").write_bytes((nifti / "example_ct_sm.nii.gz").read_bytes()[:100_000])
    (ws / "trunc.dcm").write_bytes(ct_slice.read_bytes()[:2000])
    (ws / "empty").mkdir()
    (ws / "notjson.json").write_text("not json")
    (ws / "list.json").write_text("[1, 2]")
    (ws / "afile").write_text("x")
    (ws / "dir.nii.gz").mkdir()
    (ws / "notes").mkdir()
    (ws / "notes" / "readme.txt").write_text("a user's files, not a model")

    case = {"image": str(nifti / "example_ct_sm.nii.gz"), "label": str(nifti / "example_seg.nii.gz")}
    liver = {"5": "liver"}
    manifests = {
        "m_no_labels": {"train": [case]},
        "m_class_map": {"labels": {"liver": 5}, "train": [case]},  # TotalSegmentator's: name -> value
        "m_train_object": {"labels": liver, "train": case},
        "m_case_text": {"labels": liver, "train": ["ct.nii.gz"]},
        "m_case_no_label": {"labels": liver, "train": [{"image": case["image"]}]},
        "m_case_numbers": {"labels": liver, "train": [{"image": 5, "label": 6}]},
        "m_case_missing": {"labels": liver, "train": [{"image": "nope.nii.gz", "label": "nope_seg.nii.gz"}]},
        "m_no_cases": {"labels": liver, "train": []},
        "m_test_only": {"labels": liver, "test": [case]},
        "m_truncated": {"labels": liver, "test": [{"image": str(ws / "trunc.nii.gz"), "label": case["label"]}]},
        "m_image_folder": {"labels": liver, "test": [{"image": str(ws / "empty"), "label": case["label"]}]},
        "m_series": {"labels": liver, "test": [dict(case, series=7)]},
        "m_good": {"labels": liver, "train": [case]},
    }
    for name, content in manifests.items():
        (ws / f"{name}.json").write_text(json.dumps(content))

    card = json.loads((STARTER / "model.json").read_text())
    for name in ("pretrained", "list_card", "bad_weights"):
        shutil.copytree(STARTER, ws / name)
        (ws / name).chmod(0o755)
        for path in (ws / name).iterdir():
            path.chmod(0o644)
    (ws / "pretrained" / "model.json").write_text(json.dumps(card | {"kind": "pretrained"}))
    (ws / "list_card" / "model.json").write_text("[]")
    weights = (STARTER / "weights.safetensors").read_bytes()
    (ws / "bad_weights" / "weights.safetensors").write_bytes(weights[:1000])
    (ws / "bad_weights" / "model.json").write_text(json.dumps(card | {"weights_sha256": ""}))

    (ws / "outbox").mkdir()
    (ws / "outbox" / "outbox.sqlite").write_text("not a database")
    return ws


@pytest.fixture(autouse=True)
def _service_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``--data-dir`` sets ``LRC_DATA_DIR`` in the process and the settings are cached: both undone."""
    from core.settings import get_settings

    monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / "data"))
    yield
    get_settings.cache_clear()


def _checked(result: Result, code: int, fragment: str) -> None:
    """Exit ``code``, no traceback, and ``fragment`` in a one-line ``error:`` or in typer's usage box."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    if fragment.startswith(USAGE):
        shown = " ".join(BOX.sub(" ", result.stderr).split())
        assert fragment in shown, result.stderr
    else:
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: "), result.stderr
        assert fragment in last, result.stderr


CT = "{data}/dicom/seg_dcmqi/ct-3slice"
NIFTI = "{data}/nifti/totalseg_ct_abdomen/example_ct_sm.nii.gz"
LABELS = "{data}/nifti/totalseg_ct_abdomen/example_seg.nii.gz"
SEGMENT = f"segment {CT} --out {{ws}}/s.nii.gz --device cpu"
EVALUATE = "evaluate --model {starter} --device cpu"
SMALL = "--steps 1 --batch-size 2 --spacing 6 --canvas 64 --device cpu"
PRETRAIN = f"pretrain --images {NIFTI} {SMALL} --view-size 48"
FINETUNE = f"finetune --train {{ws}}/m_good.json {SMALL} --patch 48"
PUSH = "pacs push abc --api-url http://127.0.0.1:9 --stow-url http://127.0.0.1:9"

CASES = [
    # lrc info: missing, empty, truncated, not an image
    ("info {ws}/nonexistent", 2, "nonexistent: no such file or folder"),
    ("info {ws}/empty", 2, "no files found in the input"),
    ("info {ws}/trunc.nii.gz", 2, "trunc.nii.gz: not a readable NIfTI file"),
    ("info {ws}/trunc.dcm", 2, "trunc.dcm: no pixel data"),
    ("info {ws}/notjson.json", 2, "notjson.json: not a DICOM file"),
    # lrc convert: inputs, outputs, --series, --reference, --labels
    ("convert {ws}/nonexistent {ws}/o.nii.gz", 2, "no such file or folder"),
    ("convert {ws}/trunc.nii.gz {ws}/o.nii.gz", 2, "not a readable NIfTI file"),
    (f"convert {NIFTI} {{ws}}/o.txt", 2, "Invalid value for 'OUTPUT': o.txt: output must end in .nii"),
    (f"convert {NIFTI} {{ws}}/dir.nii.gz", 2, "cannot write {ws}/dir.nii.gz: Is a directory"),
    (f"convert {NIFTI} {{ws}}/afile/o.nii.gz", 2, "cannot write {ws}/afile/o.nii.gz: {ws}/afile is a file"),
    (f"convert {NIFTI} {{ws}}/o.nii.gz --series 3", 2, "no series [3]"),
    (f"convert {NIFTI} {{ws}}/o.nii.gz --series -1", 2, "Invalid value for '--series': an index from 0"),
    (f"convert {NIFTI} {{ws}}/o.nii.gz --series ''", 2, "Invalid value for '--series'"),
    (f"convert {NIFTI} {{ws}}/o.nii.gz --series 1.2.3", 2, "no series with SeriesInstanceUID 1.2.3"),
    (f"convert {LABELS} {{ws}}/o.dcm", 2, "Invalid value for '--reference': a DICOM SEG/RTSTRUCT needs"),
    (f"convert {LABELS} {{ws}}/o.dcm --reference {{ws}}/nonexistent", 2, "no such file or folder"),
    (f"convert {LABELS} {{ws}}/o.dcm --reference {CT}", 2, "it was not drawn on this image"),
    (f"convert {NIFTI} {{ws}}/o.dcm --reference {CT}", 2, "is it the image rather than its labels?"),
    (f"convert {LABELS} {{ws}}/o.dcm --reference {CT} --labels {{ws}}/list.json", 2, "a label table is a JSON"),
    (f"convert {LABELS} {{ws}}/o.dcm --reference {CT} --labels {{ws}}/empty", 2, "not a readable JSON label"),
    (
        f"convert {LABELS} {{ws}}/o.dcm --reference {CT} --labels {{data}}/nifti/totalsegmentator_class_map.json",
        2,
        "key 'total' is no label value",
    ),
    (f"convert {LABELS} {{ws}}/o.nii.gz --overlap bogus", 2, "Invalid value for '--overlap'"),
    # lrc segment: the model, the device, --tile, the input, the output
    (f"{SEGMENT} --model {{ws}}/nonexistent", 2, "nonexistent: not a model directory (no model.json)"),
    (f"{SEGMENT} --model {{ws}}/empty", 2, "empty: not a model directory"),
    (f"{SEGMENT} --model {NIFTI}", 2, "not a model directory"),
    (f"{SEGMENT} --model {{ws}}/list_card", 2, "list_card: model.json is a JSON list, not an object"),
    (f"{SEGMENT} --model {{ws}}/bad_weights", 2, "weights.safetensors is not a readable safetensors file"),
    (f"{SEGMENT} --model {{ws}}/pretrained", 2, "a segmentation model is needed, this one is pretrained"),
    (f"{SEGMENT} --model {{starter}} --device tpu", 2, "Invalid value for '--device': unsupported device 'tpu'"),
    (f"{SEGMENT} --model {{starter}} --device ''", 2, "Invalid value for '--device': unsupported device ''"),
    (f"{SEGMENT} --model {{starter}} --device cuda:99", 2, "was asked for but this machine has"),
    (f"{SEGMENT} --model {{starter}} --tile -16", 2, "tile must be a positive multiple of 16"),
    (f"{SEGMENT} --model {{starter}} --tile tiles", 2, "--tile must be 'model', 'slice', 'patch'"),
    (f"{SEGMENT} --model {{starter}} --series 4", 2, "no series [4]"),
    ("segment {ws}/trunc.nii.gz --model {starter} --out {ws}/s.nii.gz", 2, "not a readable NIfTI file"),
    (f"segment {CT} --model {{starter}} --out {{ws}}/s.txt", 2, "--out s.txt: a NIfTI output name ends in .nii"),
    (f"segment {CT} --model {{starter}} --out {{ws}}/dir.nii.gz", 2, "dir.nii.gz: it is a folder; name a file"),
    (f"segment {CT} --model {{starter}} --out {{ws}}/afile/s.nii.gz", 2, "afile is a file, not a folder"),
    (f"segment {NIFTI} --model {{starter}} --out {{ws}}/s.dcm --format dicom-seg", 2, "must reference the DICOM"),
    # lrc evaluate: manifests malformed one way each
    (f"{EVALUATE} --data {{ws}}/nonexistent.json", 2, "nonexistent.json: cannot read the manifest"),
    (f"{EVALUATE} --data {{ws}}/empty", 2, "empty: cannot read the manifest (Is a directory)"),
    (f"{EVALUATE} --data {{ws}}/notjson.json", 2, "notjson.json: not a JSON manifest"),
    (f"{EVALUATE} --data {{ws}}/list.json", 2, "list.json: a manifest is a JSON object"),
    (f"{EVALUATE} --data {{ws}}/m_no_labels.json", 2, 'm_no_labels.json: no "labels"'),
    (f"{EVALUATE} --data {{ws}}/m_class_map.json", 2, "key 'liver' is no label value"),
    (f"{EVALUATE} --data {{ws}}/m_train_object.json", 2, '"train" must be a list of cases'),
    (f"{EVALUATE} --data {{ws}}/m_case_text.json", 2, 'train[0] needs "image" and "label"'),
    (f"{EVALUATE} --data {{ws}}/m_case_no_label.json", 2, 'train[0] needs "image" and "label"'),
    (f"{EVALUATE} --data {{ws}}/m_case_numbers.json", 2, 'train[0]: "image" and "label" are paths'),
    (f"{EVALUATE} --data {{ws}}/m_case_missing.json", 2, "train[0]: {ws}/nope.nii.gz does not exist"),
    (f"{EVALUATE} --data {{ws}}/m_no_cases.json", 2, "none of 'test', 'validation', 'train' lists a case"),
    (f"{EVALUATE} --data {{ws}}/m_truncated.json", 2, "test[0]: image {ws}/trunc.nii.gz: trunc.nii.gz: not a"),
    (f"{EVALUATE} --data {{ws}}/m_image_folder.json", 2, "test[0]: image {ws}/empty: no files found"),
    (f"{EVALUATE} --data {{ws}}/m_series.json", 2, "test[0]: image"),
    (f"{EVALUATE} --data {{ws}}/m_good.json --series -2", 2, "Invalid value for '--series'"),
    ("evaluate --model {ws}/pretrained --data {ws}/m_good.json", 2, "a segmentation model is needed"),
    ("evaluate --model {starter} --data {ws}/m_good.json --device tpu", 2, "Invalid value for '--device'"),
    # lrc pretrain: the inputs, numbers out of range, the output
    ("pretrain --images {ws}/nonexistent --out {ws}/p", 2, "nonexistent: no such file or folder"),
    (f"pretrain --images {{ws}}/trunc.nii.gz --out {{ws}}/p {SMALL}", 2, "no readable image in --images: trunc.nii"),
    (f"{PRETRAIN} --out {{ws}}/p --steps -5", 2, "steps must be >= 1, got -5"),
    (f"{PRETRAIN} --out {{ws}}/p --batch-size 1", 2, "batch_size must be >= 2, got 1"),
    (f"{PRETRAIN} --out {{ws}}/p --spacing 0", 2, "spacing must be >= 0.1, got 0.0"),
    (f"{PRETRAIN} --out {{ws}}/p --steps 2000000", 2, "steps must be <= 1000000, got 2000000"),
    (f"{PRETRAIN} --out {{ws}}/p --canvas 0", 2, "canvas must be >= 16, got 0"),
    (f"{PRETRAIN} --out {{ws}}/p --view-size 40", 2, "view_size must be a multiple of 16, got 40"),
    (f"{PRETRAIN} --out {{ws}}/p --dims 4", 2, "spatial_dims must be one of 2, 3, got 4"),
    (f"{PRETRAIN} --out {{ws}}/p --dims 3 --depth 0", 2, "depth must be >= 1, got 0"),
    (f"{PRETRAIN} --out {{ws}}/p --seed -1", 2, "seed must be >= 0, got -1"),
    (f"{PRETRAIN} --out {{ws}}/p --method bogus", 2, "Invalid value for '--method'"),
    (f"{PRETRAIN} --out {{ws}}/p --device cuda:99", 2, "was asked for but this machine has"),
    (f"{PRETRAIN} --out {{ws}}/afile", 2, "cannot write {ws}/afile: it is a file, not a model directory"),
    (f"{PRETRAIN} --out {{ws}}/afile/p", 2, "{ws}/afile is a file, not a folder"),
    # lrc finetune: the manifest, numbers out of range, --init, the output
    (f"finetune --train {{ws}}/list.json --out {{ws}}/f {SMALL} --patch 48", 2, "a manifest is a JSON object"),
    (f"finetune --train {{ws}}/m_test_only.json --out {{ws}}/f {SMALL} --patch 48", 2, "'train' lists no cases"),
    (f"{FINETUNE} --out {{ws}}/f --steps 0", 2, "steps must be >= 1, got 0"),
    (f"{FINETUNE} --out {{ws}}/f --batch-size 0", 2, "batch_size must be >= 1, got 0"),
    (f"{FINETUNE} --out {{ws}}/f --validate-every 0", 2, "validate_every must be >= 1, got 0"),
    (f"{FINETUNE} --out {{ws}}/f --patch 0", 2, "patch must be >= 16, got 0"),
    (f"{FINETUNE} --out {{ws}}/f --spacing -2", 2, "spacing must be >= 0.1, got -2.0"),
    (f"{FINETUNE} --out {{ws}}/f --patch 40", 2, "patch must be a multiple of 16, got 40"),
    (f"{FINETUNE} --out {{ws}}/f --augment-scale 2 1", 2, "augment_scale must be 0 < min <= max"),
    (f"{FINETUNE} --out {{ws}}/f --seed 4294967296", 2, "seed must be <= 4294967295, got 4294967296"),
    (f"{FINETUNE} --out {{ws}}/f --tile bogus", 2, "tile must be one of slice, patch, got 'bogus'"),
    (f"{FINETUNE} --out {{ws}}/f --tile 40", 2, "tile must be a positive multiple of 16, got 40"),
    (f"{FINETUNE} --out {{ws}}/f --device tpu", 2, "Invalid value for '--device'"),
    (f"{FINETUNE} --out {{ws}}/f --init {{ws}}/nonexistent", 2, "nonexistent: not a model directory"),
    (f"{FINETUNE} --out {{ws}}/f --init {{ws}}/notes", 2, "notes: not a model directory"),
    (f"{FINETUNE} --out {{ws}}/f --init {{ws}}/list_card", 2, "model.json is a JSON list"),
    (f"{FINETUNE} --out {{ws}}/afile", 2, "cannot write {ws}/afile: it is a file, not a model directory"),
    (f"{FINETUNE} --out {{ws}}/notes", 2, "the folder holds files but no model"),
    # lrc serve, worker, keys: ports, the data folder, names
    ("serve --port 0", 2, "Invalid value for '--port'"),
    ("serve --port 70000", 2, "Invalid value for '--port'"),
    ("serve --keep-alive 0", 2, "Invalid value for '--keep-alive'"),
    ("serve --data-dir {ws}/afile", 2, "the data folder (--data-dir, LRC_DATA_DIR): cannot write {ws}/afile: it is"),
    ("worker --concurrency 0", 2, "Invalid value for '--concurrency'"),
    ("worker --queues infer,gpu", 2, "unknown queue(s) ['gpu']"),
    ("worker --data-dir {ws}/afile", 2, "the data folder (--data-dir, LRC_DATA_DIR)"),
    ("keys create --name x --role root", 2, "role must be one of viewer, submitter, admin"),
    ("keys create --name ''", 2, "Invalid value for '--name': a key's name is 1 to 128 characters"),
    ("keys create --name x --project 'Bad Name'", 2, "Invalid value for '--project': project name 'Bad Name'"),
    ("keys create --name x --data-dir {ws}/afile", 2, "the data folder (--data-dir, LRC_DATA_DIR)"),
    ("keys list --project 'Bad Name'", 2, "Invalid value for '--project'"),
    ("keys revoke abc --project 'Bad Name'", 2, "Invalid value for '--project'"),
    ("keys revoke no-such-key", 1, "project 'default' has no key 'no-such-key'"),
    # lrc gateway and gateway-outbox: settings, the data folder, a file that is no outbox
    ("gateway --port 0 --stow-url http://x --data-dir {ws}/gw", 2, "port: Input should be greater than"),
    ("gateway --stow-url ftp://x --data-dir {ws}/gw", 2, "an http(s) URL is needed, got 'ftp://x'"),
    ("gateway --stow-url http://x --ae-title waytoolongaetitle1 --data-dir {ws}/gw", 2, "an AE title is 1 to 16"),
    ("gateway --stow-url http://x --rules {ws}/nonexistent.yaml --data-dir {ws}/gw", 2, "rules file"),
    ("gateway --stow-url http://x --data-dir {ws}/afile", 2, "LRC_GATEWAY_DATA_DIR): cannot write {ws}/afile"),
    ("gateway --stow-url http://x --api-key-file {ws}/empty --data-dir {ws}/gw", 2, "cannot read the API key file"),
    ("gateway-outbox --data-dir {ws}/empty", 2, "no outbox at {ws}/empty/outbox.sqlite"),
    ("gateway-outbox --data-dir {ws}/outbox", 2, "outbox.sqlite: not a SQLite file of the gateway"),
    # lrc pacs: nodes, URLs, AE titles, numbers, the pseudonym mapping
    ("pacs find", 2, "give exactly one of --pacs AE@HOST:PORT and --dicomweb URL"),
    ("pacs find --pacs PACS@127.0.0.1:70000", 2, "port 70000 of destination"),
    ("pacs find --dicomweb pacs.local", 2, "Invalid value for '--dicomweb': an http(s) URL is needed"),
    ("pacs find --pacs PACS@127.0.0.1:9 --ae-title waytoolongaetitle1", 2, "Invalid value for '--ae-title'"),
    ("pacs find --pacs PACS@127.0.0.1:9 --since 2020-13-01", 2, "Invalid value for '--since'"),
    ("pacs import --pacs PACS@127.0.0.1:9 --api-url pacs.local", 2, "Invalid value for '--api-url'"),
    ("pacs import --pacs PACS@127.0.0.1:9 --api-url http://127.0.0.1:9 --limit 0", 2, "Invalid value for '--limit'"),
    (f"{PUSH} --wait -1", 2, "Invalid value for '--wait'"),
    (f"{PUSH} --format nifti", 2, "--format is dicom-seg or rtstruct"),
    (f"{PUSH} --mapping {{ws}}/nonexistent", 2, "no pseudonym mapping at {ws}/nonexistent"),
    (f"{PUSH} --mapping {{ws}}/afile", 2, "the pseudonym mapping (--mapping): {ws}/afile: not a SQLite file"),
    ("pacs find --pacs PACS@127.0.0.1:9", 1, "could not be reached"),
]


@pytest.mark.parametrize(("line", "code", "fragment"), CASES, ids=[c[0][:60] for c in CASES])
def test_a_mistake_is_a_message_and_an_exit_code(
    ws: Path, shared_data: Path, line: str, code: int, fragment: str
) -> None:
    where = {"ws": ws, "data": shared_data, "starter": STARTER}
    args = [a.format(**where) for a in shlex.split(line)]
    _checked(runner.invoke(app, args), code, fragment.format(**where))


def test_nothing_is_written_over_a_folder_that_holds_no_model(ws: Path, shared_data: Path) -> None:
    """A model is saved by replacing its folder: a folder of other files is refused, and left alone."""
    line = [*PRETRAIN.format(data=shared_data).split(), "--out", str(ws / "notes")]
    _checked(runner.invoke(app, line), 2, "the folder holds files but no model")
    assert [p.name for p in (ws / "notes").iterdir()] == ["readme.txt"]


def test_a_file_given_as_the_mapping_is_not_made_a_database(tmp_path: Path) -> None:
    """SQLite takes a file of one byte for an empty database and writes over it: such a file is refused."""
    note = tmp_path / "note.txt"
    note.write_text("x")
    line = [*PUSH.split(), "--mapping", str(note)]
    _checked(runner.invoke(app, line), 2, f"{note}: not a SQLite file of the gateway; refusing to open it")
    assert note.read_text() == "x"


def test_serve_refuses_a_port_in_use_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _checked(runner.invoke(app, ["serve", "--port", str(port)]), 1, f"cannot listen on 127.0.0.1:{port}")


def test_a_bad_device_setting_stops_the_service_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRC_DEVICE", "tpu")
    _checked(runner.invoke(app, ["keys", "list"]), 2, "LRC_DEVICE: Value error, unsupported device 'tpu'")
