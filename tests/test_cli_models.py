"""``lrc pretrain``, ``finetune``, ``segment`` and ``evaluate`` as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from lrc.cli import app
from lrc.io import read_nifti, read_volume
from lrc.io.seg import read_seg
from lrc.model_dirs.store import read_card
from tests.io.test_seg import dciodvfy_errors
from tests.nets.test_basic_unet import STARTER

runner = CliRunner()


def test_pretrain_finetune_segment_evaluate(shared_data: Path, tmp_path: Path):
    nifti = shared_data / "nifti" / "totalseg_ct_abdomen"
    dicom = shared_data / "dicom" / "ct_series_totalseg"
    small = ["--spacing", "6", "--canvas", "64", "--device", "cpu"]
    result = runner.invoke(
        app,
        [
            "pretrain",
            "--images",
            str(nifti / "example_ct.nii.gz"),
            "--method",
            "lrc",
            "--out",
            str(tmp_path / "pre"),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--view-size",
            "48",
            "--seed",
            "3",
            *small,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    training = json.loads(result.stdout)["card"]["training"]
    assert (training["method"], training["config"]["view_size"], training["config"]["seed"]) == ("lrc", 48, 3)

    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "labels": {"5": "liver"},
                "train": [
                    {
                        "image": str(nifti / "example_ct.nii.gz"),
                        "label": str(nifti / "example_seg_fast_force_split.nii.gz"),
                    }
                ],
                "validation": [{"image": str(dicom), "label": str(dicom / "example_seg_dicom.nii.gz")}],
            }
        )
    )
    # The DICOM folder also holds the label NIfTI: reading it as "one image" must fail clearly.
    result = runner.invoke(
        app,
        [
            "finetune",
            "--train",
            str(manifest),
            "--out",
            str(tmp_path / "seg"),
            "--init",
            str(tmp_path / "pre"),
            "--steps",
            "2",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2
    assert "holds 2 series" in result.output

    files = tmp_path / "c"
    files.mkdir()
    for path in dicom.glob("CT.*"):
        shutil.copy(path, files / path.name)
    data = json.loads(manifest.read_text())
    data["validation"][0]["image"] = str(files)
    manifest.write_text(json.dumps(data))
    result = runner.invoke(
        app,
        [
            "finetune",
            "--train",
            str(manifest),
            "--out",
            str(tmp_path / "seg"),
            "--init",
            str(tmp_path / "pre"),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--patch",
            "48",
            "--validate-every",
            "1",
            "--backbone-lr-factor",
            "2",
            "--augment-scale",
            "0.8",
            "1.25",
            "--augment-rotate",
            "10",
            "--flip",
            "--tile",
            "32",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["metrics"]["dice"]) == {"liver"}
    assert json.loads(result.stdout)["inference_tile"] == 32  # a given tile wins over the pre-trained base's 'patch'
    config = json.loads((tmp_path / "seg" / "model.json").read_text())["training"]["config"]
    assert config["backbone_lr_factor"] == 2.0
    assert (config["augment_scale"], config["augment_rotate"], config["flip"]) == ([0.8, 1.25], 10.0, True)
    assert config["tile"] == 32

    out = tmp_path / "out.nii.gz"
    result = runner.invoke(
        app, ["segment", str(files), "--model", str(tmp_path / "seg"), "--out", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    image = read_volume(files)
    labels = read_nifti(out)
    assert labels.shape == image.shape
    assert np.allclose(labels.affine, image.affine, atol=1e-4)

    result = runner.invoke(
        app, ["evaluate", "--model", str(tmp_path / "seg"), "--data", str(manifest), "--device", "cpu", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cases"] == 1
    assert 0.0 <= report["labels"]["liver"]["dice"] <= 1.0


def test_segment_to_dicom_seg_and_rtstruct(shared_data: Path, tmp_path: Path):
    """A model's output as DICOM SEG and RTSTRUCT on real slices with UIDs, valid per dciodvfy."""
    nifti = shared_data / "nifti" / "totalseg_ct_abdomen"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "labels": {"5": "liver"},
                "train": [
                    {
                        "image": str(nifti / "example_ct.nii.gz"),
                        "label": str(nifti / "example_seg_fast_force_split.nii.gz"),
                    }
                ],
            }
        )
    )
    result = runner.invoke(
        app,
        [
            "finetune",
            "--train",
            str(manifest),
            "--out",
            str(tmp_path / "seg"),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--patch",
            "48",
            "--spacing",
            "6",
            "--canvas",
            "64",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "n/a (no held-out case)" in result.output
    ct = shared_data / "dicom" / "seg_dcmqi" / "ct-3slice"
    for fmt in ("dicom-seg", "rtstruct"):
        out = tmp_path / f"{fmt}.dcm"
        result = runner.invoke(
            app,
            [
                "segment",
                str(ct),
                "--model",
                str(tmp_path / "seg"),
                "--out",
                str(out),
                "--format",
                fmt,
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
        assert dciodvfy_errors(out) == []
    seg = read_seg(tmp_path / "dicom-seg.dcm", read_volume(ct))
    assert seg.table[1].name == "liver"
    assert pydicom.dcmread(tmp_path / "rtstruct.dcm").Modality == "RTSTRUCT"


def test_missing_model_is_a_clear_error(tmp_path: Path, shared_data: Path):
    result = runner.invoke(
        app,
        [
            "segment",
            str(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice"),
            "--model",
            str(tmp_path),
            "--out",
            str(tmp_path / "x.nii.gz"),
        ],
    )
    assert result.exit_code == 2
    assert "not a model directory" in result.output


def test_pretrain_3d(shared_data: Path, tmp_path: Path):
    image = str(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz")
    common = ["pretrain", "--images", image, "--out", str(tmp_path / "pre3d"), "--dims", "3", "--spacing", "6"]
    small = ["--spacing-z", "6", "--canvas", "64", "--view-size", "32", "--depth", "24", "--device", "cpu", "--json"]
    result = runner.invoke(app, [*common, *small, "--steps", "1", "--batch-size", "2", "--view-depth", "16"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)["card"]
    assert card["arguments"]["spatial_dims"] == 3
    assert card["training"]["config"]["view_depth"] == 16
    result = runner.invoke(app, [*common, *small, "--view-depth", "20"])
    assert result.exit_code != 0
    assert "multiple of 16" in result.output


def test_segment_by_tiles_of_the_training_patch(shared_data: Path, tmp_path: Path):
    """``--tile patch`` runs the shipped starter model over tiles of its 128-pixel training patch; by
    default (``model``) it runs whole slices, as its card says (trained from scratch)."""
    assert read_card(STARTER).training["patch"] == [128, 128]
    ct = str(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")
    common = ["segment", ct, "--model", str(STARTER), "--device", "cpu"]
    arrays = {}
    for tile in ("slice", "patch", "128", "model"):
        result = runner.invoke(app, [*common, "--out", str(tmp_path / f"{tile}.nii.gz"), "--tile", tile])
        assert result.exit_code == 0, result.output
        arrays[tile] = read_nifti(tmp_path / f"{tile}.nii.gz").array
    assert np.array_equal(arrays["patch"], arrays["128"])
    assert np.array_equal(arrays["model"], arrays["slice"])
    assert not np.array_equal(arrays["patch"], arrays["slice"])
    for bad, message in (("tiles", "'model', 'slice', 'patch' or a side"), ("100", "multiple of 16")):
        result = runner.invoke(app, [*common, "--out", str(tmp_path / "x.nii.gz"), "--tile", bad])
        assert result.exit_code != 0
        assert message in result.output


def test_evaluate_meets_labels_by_name_not_number(shared_data: Path, tmp_path: Path):
    """The starter model (liver 1, spleen 2, stomach 3, aorta 4) on the real DICOM CT, whose label map has
    TotalSegmentator's values (liver 5, spleen 1, ...): its card's held-out Dice, not that of matching values."""
    folder = shared_data / "dicom" / "ct_series_totalseg"  # the CT (series 1) and its label map (series 0)
    labels = {"5": "liver", "1": "spleen", "6": "stomach", "52": "aorta", "2": "kidney_right"}
    case = {"image": str(folder), "series": 1, "label": str(folder / "example_seg_dicom.nii.gz")}
    manifest = tmp_path / "test-only.json"
    manifest.write_text(json.dumps({"labels": labels, "test": [case]}))  # no train part: evaluation only
    common = ["evaluate", "--model", str(STARTER), "--data", str(manifest), "--device", "cpu"]
    result = runner.invoke(app, [*common, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    card = read_card(STARTER)
    assert card.metrics is not None
    assert report["cases"] == 1
    for name, dice in card.metrics["dice"].items():  # the card's held-out case is this CT
        assert report["labels"][name]["dice"] == pytest.approx(dice, abs=1e-9)
    assert report["labels"]["liver"]["dice"] > 0.8
    assert report["mean_dice"] == pytest.approx(card.metrics["mean_dice"], abs=1e-9)
    assert report["matched"]["liver"] == {"model": 1, "reference": 5}
    assert report["not_scored"] == {"model_only": [], "reference_only": ["kidney_right"]}
    text = runner.invoke(app, common)
    assert text.exit_code == 0, text.output
    assert "not scored, in the reference only: kidney_right" in text.output
    assert "(model 1, reference 5)" in text.output

    manifest.write_text(json.dumps({"labels": {"77": "femur_left"}, "test": [case]}))
    result = runner.invoke(app, common)
    assert result.exit_code == 2
    assert "share no structure" in result.output


def test_long_commands_show_progress_on_a_terminal_unless_quiet_or_json(shared_data: Path, tmp_path: Path):
    ct = str(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")
    common = ["segment", ct, "--model", str(STARTER), "--device", "cpu", "--out", str(tmp_path / "s.nii.gz")]
    assert runner.invoke(app, common).stderr == ""  # no terminal: no progress
    terminal = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "NO_COLOR": "1"}  # a terminal, drawn once
    shown = runner.invoke(app, common, env=terminal)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == f"wrote {tmp_path / 's.nii.gz'}\n"  # stdout keeps only the result
    for stage in ("loading the model", "reading ct-3slice", "segmenting slices", "3/3", "writing s.nii.gz"):
        assert stage in shown.stderr, shown.stderr
    for flag in ("--quiet", "--json"):
        silent = runner.invoke(app, [*common, flag], env=terminal)
        assert silent.exit_code == 0, silent.output
        assert silent.stderr == ""

    manifest = tmp_path / "m.json"
    label = shared_data / "dicom" / "seg_dcmqi" / "liver.dcm"
    manifest.write_text(json.dumps({"labels": {"1": "liver"}, "test": [{"image": ct, "label": str(label)}]}))
    scored = runner.invoke(
        app, ["evaluate", "--model", str(STARTER), "--data", str(manifest), "--device", "cpu"], env=terminal
    )
    assert scored.exit_code == 0, scored.output
    assert "segmenting and scoring 1 case(s)" in scored.stderr
    assert "3/3" in scored.stderr
