"""The writer registry: each writer's description, lookups, and a file its reader reads back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from lrc.io import SegmentationFormatError, Volume, read_nifti, read_volume
from lrc.io.labels import LabelTable
from lrc.io.rtstruct_read import read_rtstruct
from lrc.io.seg import read_seg
from lrc.writers import (
    DICOM_SEG,
    NIFTI,
    RTSTRUCT,
    WRITERS,
    UnknownFormat,
    WriteOptions,
    get_writer,
    writer_names,
)
from tests.dicom_factory import line

TABLE = LabelTable.from_names({1: "liver", 3: "spleen"})


@pytest.mark.parametrize(
    ("name", "title", "media_type", "extension", "filename", "needs_dicom"),
    [
        ("nifti", "NIfTI", "application/gzip", ".nii.gz", "segmentation.nii.gz", False),
        ("dicom-seg", "DICOM SEG", "application/dicom", ".dcm", "segmentation.dcm", True),
        ("rtstruct", "RTSTRUCT", "application/dicom", ".dcm", "rtstruct.dcm", True),
    ],
)
def test_each_writer_as_registered(
    name: str, title: str, media_type: str, extension: str, filename: str, needs_dicom: bool
):
    writer = get_writer(name)
    assert (writer.name, writer.title, writer.media_type) == (name, title, media_type)
    assert (writer.extension, writer.filename, writer.needs_dicom) == (extension, filename, needs_dicom)
    assert writer.filename.endswith(writer.extension)
    assert WRITERS[name] is writer


def test_names_in_the_registry_order():
    assert list(WRITERS) == ["nifti", "dicom-seg", "rtstruct"]
    assert writer_names() == ("nifti", "dicom-seg", "rtstruct")
    assert writer_names(needs_dicom=True) == ("dicom-seg", "rtstruct")
    assert writer_names(needs_dicom=False) == ("nifti",)
    assert tuple(get_writer(n) for n in writer_names()) == (NIFTI, DICOM_SEG, RTSTRUCT)


@pytest.mark.parametrize("name", ["nrrd", "NIFTI", "seg", ""])
def test_an_unknown_name_is_refused_with_the_names_there_are(name: str):
    with pytest.raises(UnknownFormat) as caught:
        get_writer(name)
    assert str(caught.value) == f"format must be one of nifti, dicom-seg, rtstruct, got {name!r}"
    assert isinstance(caught.value, ValueError)


@pytest.fixture
def image(make_series: Callable[..., list[Path]]) -> Volume:
    """A 64 x 64 x 3 CT series with its DICOM source (real slice header, generated positions)."""
    return read_volume(make_series(line(3)))


def labels_on(image: Volume) -> Volume:
    array = np.zeros(image.shape, dtype=np.uint8)
    array[10:30, 12:40, 0:2] = 1
    array[40:56, 20:50, 1:3] = 3
    return image.with_array(array)


def test_nifti_reads_back(image: Volume, tmp_path: Path):
    labels = labels_on(image)
    written = NIFTI.write(labels, tmp_path / NIFTI.filename)
    assert written == tmp_path / "segmentation.nii.gz"
    assert written.read_bytes()[:2] == b"\x1f\x8b"  # gzip, as its media type says
    back = read_nifti(written)
    assert_array_equal(back.array, labels.array)
    assert_allclose(back.affine, labels.affine, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "kind"), [(WriteOptions(), "BINARY"), (WriteOptions("tiny-ct", "labelmap"), "LABELMAP")]
)
def test_dicom_seg_reads_back(image: Volume, tmp_path: Path, options: WriteOptions, kind: str):
    labels = labels_on(image)
    written = DICOM_SEG.write(labels, tmp_path / DICOM_SEG.filename, image, TABLE, options)
    assert written.read_bytes()[128:132] == b"DICM"  # a DICOM file, as its media type says
    header = pydicom.dcmread(written, stop_before_pixels=True)
    assert (header.Modality, header.SegmentationType) == ("SEG", kind)
    assert {s.SegmentAlgorithmName for s in header.SegmentSequence} == {options.algorithm_name}
    masks = read_seg(written, image)  # segments numbered 1, 2, ... in the table's order
    assert [masks.table[n].name for n in masks.table] == ["liver", "spleen"]
    assert_array_equal(np.array([0, 1, 3])[masks.label_map().array], labels.array)


def test_rtstruct_reads_back(image: Volume, tmp_path: Path):
    labels = labels_on(image)
    written = RTSTRUCT.write(labels, tmp_path / RTSTRUCT.filename, image, TABLE)
    assert written.read_bytes()[128:132] == b"DICM"
    assert pydicom.dcmread(written, stop_before_pixels=True).Modality == "RTSTRUCT"
    back, table = read_rtstruct(written, image, {"liver": 1, "spleen": 3})
    assert_array_equal(back.array, labels.array)
    assert {v: table[v].name for v in table} == {1: "liver", 3: "spleen"}


@pytest.mark.parametrize("writer", [DICOM_SEG, RTSTRUCT], ids=lambda w: w.name)
def test_a_dicom_writer_needs_the_image_and_the_table(image: Volume, tmp_path: Path, writer: Any):
    labels = labels_on(image)
    for given in ({"table": TABLE}, {"image": image}):
        with pytest.raises(SegmentationFormatError, match=f"a {writer.title} is written with the DICOM image"):
            writer.write(labels, tmp_path / "out.dcm", **given)
    nifti_image = read_nifti(NIFTI.write(image, tmp_path / "image.nii.gz"))  # no DICOM source
    with pytest.raises(SegmentationFormatError, match="must reference"):
        writer.write(nifti_image.with_array(labels.array), tmp_path / "out.dcm", nifti_image, TABLE)
    assert not (tmp_path / "out.dcm").exists()


def test_nifti_refuses_a_name_of_another_format(image: Volume, tmp_path: Path):
    with pytest.raises(ValueError, match=r"out.dcm: a NIfTI output name ends in .nii or .nii.gz"):
        NIFTI.write(labels_on(image), tmp_path / "out.dcm")


def test_the_registry_imports_no_image_library():
    """The command line builds its --format choices from it and must start fast."""
    code = (
        "import sys, lrc.writers; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pydicom', 'nibabel', 'highdicom'}),"
        " 'lrc.io' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[] False"
