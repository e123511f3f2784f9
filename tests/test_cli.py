"""The ``lrc`` command line: info and convert, as users and scripts call them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

from lrc.cli import app
from lrc.io import read_nifti, read_volume
from lrc.io.seg import read_seg

runner = CliRunner()


def test_info_json_on_the_real_series(shared_data: Path):
    """Run as users do: the installed console script, in its own process."""
    run = subprocess.run(
        [Path(sys.executable).parent / "lrc", "info", "--json", str(shared_data / "dicom" / "ct_series_totalseg")],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(run.stdout)
    dicom = [s for s in report["series"] if s["modality"] == "CT"]
    assert len(dicom) == 1
    series = dicom[0]
    assert series["shape"] == [512, 512, 20]
    assert_allclose(series["spacing"], [0.9765625, 0.9765625, 2.0])
    assert np.asarray(series["affine"]).shape == (4, 4)
    assert series["orientation"] == "LPS"
    assert series["slice_count"] == 20
    assert any("UIDs" in w for w in series["warnings"])
    nifti = [s for s in report["series"] if s["modality"] == "OT"]
    assert nifti[0]["orientation"] == "LAS"  # the label map beside it, as written by its tool


def test_info_text_and_failure_exit_code(tmp_path: Path):
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 300)
    result = runner.invoke(app, ["info", str(tmp_path / "junk.dcm")])
    assert result.exit_code == 2
    assert "junk.dcm: not a DICOM file" in result.output
    result = runner.invoke(app, ["info", "--json", str(tmp_path / "junk.dcm")])
    assert json.loads(result.stdout)["error"] == "InvalidDicom"


def test_info_reports_failed_series(make_series, tmp_path: Path):
    from tests.dicom_factory import line

    make_series(line(3), folder="in/good")
    make_series([(-25.0, -25.0, z) for z in (0, 2, 5, 7)], folder="in/bad")
    result = runner.invoke(app, ["info", "--json", str(tmp_path / "in")])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert len(report["series"]) == 1
    assert report["errors"][0]["kind"] == "nonuniform_spacing"


def test_convert_dicom_to_nifti(shared_data: Path, tmp_path: Path):
    source = shared_data / "dicom" / "ct_series_totalseg"
    out = tmp_path / "ct.nii.gz"
    result = runner.invoke(app, ["convert", str(source), str(out)])
    # The folder also holds a NIfTI label map: two series, so convert must refuse and say so.
    assert result.exit_code == 2
    assert "holds 2 series" in result.output
    files = [str(p) for p in sorted(source.glob("CT.*"))]
    result = runner.invoke(app, ["convert", files[0], str(out)])
    assert result.exit_code == 0, result.output
    single = nib.load(out)
    assert single.shape == (512, 512, 1)


def test_convert_seg_with_reference(shared_data: Path, tmp_path: Path):
    folder = shared_data / "dicom" / "seg_dcmqi"
    out = tmp_path / "liver.nii.gz"
    result = runner.invoke(
        app, ["convert", str(folder / "liver.dcm"), str(out), "--reference", str(folder / "ct-3slice")]
    )
    assert result.exit_code == 0, result.output
    image = read_volume(folder / "ct-3slice")
    labels = read_nifti(out)
    assert_allclose(labels.affine, image.affine, atol=1e-5)
    assert_array_equal(labels.array, read_seg(folder / "liver.dcm", image).label_map().array)
    assert json.loads((tmp_path / "liver.labels.json").read_text())["1"]["name"] == "Liver"


def test_convert_overlapping_seg_needs_a_choice(shared_data: Path, tmp_path: Path):
    folder = shared_data / "dicom" / "seg_dcmqi"
    args = [
        "convert",
        str(folder / "partial_overlaps.dcm"),
        str(tmp_path / "o.nii.gz"),
        "--reference",
        str(folder / "ct-3slice"),
    ]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    assert "more than one segment" in refused.output
    assert runner.invoke(app, [*args, "--overlap", "last"]).exit_code == 0


def test_convert_label_map_to_seg_and_rtstruct(shared_data: Path, tmp_path: Path):
    folder = shared_data / "dicom" / "seg_dcmqi"
    assert (
        runner.invoke(
            app,
            [
                "convert",
                str(folder / "liver.dcm"),
                str(tmp_path / "l.nii.gz"),
                "--reference",
                str(folder / "ct-3slice"),
            ],
        ).exit_code
        == 0
    )
    (tmp_path / "labels.json").write_text(json.dumps({"1": "liver"}))
    for fmt in ("seg", "rtstruct"):
        result = runner.invoke(
            app,
            [
                "convert",
                str(tmp_path / "l.nii.gz"),
                str(tmp_path / f"{fmt}.dcm"),
                "--reference",
                str(folder / "ct-3slice"),
                "--labels",
                str(tmp_path / "labels.json"),
                "--format",
                fmt,
            ],
        )
        assert result.exit_code == 0, result.output
    image = read_volume(folder / "ct-3slice")
    assert read_seg(tmp_path / "seg.dcm", image).table[1].type[1] == "10200004"


def test_info_lists_series_and_convert_picks_one_by_index_or_uid(make_series, shared_data: Path, tmp_path: Path):
    source = shared_data / "dicom" / "ct_series_totalseg"  # a DICOM CT and a NIfTI label map in one folder
    report = json.loads(runner.invoke(app, ["info", "--json", str(source)]).stdout)
    assert [(s["index"], s["shape"]) for s in report["series"]] == [(0, [512, 512, 20]), (1, [512, 512, 20])]
    assert [s["modality"] for s in report["series"]] == ["OT", "CT"]  # the NIfTI first, then the DICOM series
    result = runner.invoke(app, ["convert", str(source), str(tmp_path / "ct.nii.gz")])
    assert result.exit_code == 2
    assert "--series N" in result.output
    assert "[1] CT" in result.output
    result = runner.invoke(app, ["convert", str(source), str(tmp_path / "ct.nii.gz"), "--series", "1"])
    assert result.exit_code == 0, result.output
    assert nib.load(tmp_path / "ct.nii.gz").shape == (512, 512, 20)
    result = runner.invoke(app, ["convert", str(source), str(tmp_path / "x.nii.gz"), "--series", "5"])
    assert result.exit_code == 2
    assert "no series [5]" in result.output

    line = [(-25.0, -25.0, 2.0 * k) for k in range(3)]
    make_series(line, folder="two/a", series_uid="1.2.826.0.1.3680043.10.999.1")
    make_series(line[:2], folder="two/b", series_uid="1.2.826.0.1.3680043.10.999.2")
    both = str(tmp_path / "two")
    result = runner.invoke(
        app, ["convert", both, str(tmp_path / "b.nii.gz"), "--series", "1.2.826.0.1.3680043.10.999.2"]
    )
    assert result.exit_code == 0, result.output
    assert nib.load(tmp_path / "b.nii.gz").shape == (64, 64, 2)
    result = runner.invoke(app, ["convert", both, str(tmp_path / "c.nii.gz"), "--series", "1.2.3.4"])
    assert result.exit_code == 2
    assert "no series with SeriesInstanceUID 1.2.3.4" in result.output


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ('{"liver": 5}', "key 'liver' is no label value"),  # TotalSegmentator's class map, name -> value
        ("not json", "not a readable JSON label table"),
    ],
)
def test_a_malformed_labels_table_is_one_line(shared_data: Path, tmp_path: Path, table: str, needle: str):
    labels = tmp_path / "labels.json"
    labels.write_text(table)
    folder = shared_data / "dicom" / "seg_dcmqi"
    seg = tmp_path / "liver.nii.gz"
    assert (
        runner.invoke(
            app, ["convert", str(folder / "liver.dcm"), str(seg), "--reference", str(folder / "ct-3slice")]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        app,
        [
            "convert",
            str(seg),
            str(tmp_path / "o.dcm"),
            "--reference",
            str(folder / "ct-3slice"),
            "--labels",
            str(labels),
        ],
    )
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    (line,) = result.output.strip().splitlines()
    assert needle in line
    assert str(labels) in line
