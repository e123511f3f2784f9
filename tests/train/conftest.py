"""Fixtures of the training tests: the real CT of the shared data and its labels, and a small pre-trained model."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrc.io import Volume, read_nifti, read_volume
from lrc.train.pretrain import pretrain
from tests.train.recipes import small_pretrain


@pytest.fixture(scope="module")
def subject_a(shared_data: Path) -> tuple[Volume, Volume]:
    """TotalSegmentator's abdominal CT (3 mm, RAS NIfTI) and its label map."""
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    return (
        read_nifti(folder / "example_ct.nii.gz", modality="CT"),
        read_nifti(folder / "example_seg_fast_force_split.nii.gz"),
    )


@pytest.fixture(scope="module")
def subject_c(shared_data: Path) -> tuple[Volume, Volume]:
    """The Siemens JPEG 2000 DICOM CT (LPS) and its label map (LAS NIfTI)."""
    folder = shared_data / "dicom" / "ct_series_totalseg"
    return read_volume(sorted(folder.glob("CT.*"))), read_nifti(folder / "example_seg_dicom.nii.gz")


@pytest.fixture(scope="module")
def pretrained(subject_a: tuple[Volume, Volume], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step ``moco+lrc`` model of :func:`tests.train.recipes.small_pretrain` on ``subject_a``."""
    out = tmp_path_factory.mktemp("models") / "pretrained"
    return pretrain([subject_a[0]], out, small_pretrain(), device="cpu", cache_dir=out.parent / "cache")
