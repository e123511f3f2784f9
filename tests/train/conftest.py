"""Fixtures of the training tests: the real CT of the shared data and its labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrc.io import Volume, read_nifti


@pytest.fixture(scope="module")
def subject_a(shared_data: Path) -> tuple[Volume, Volume]:
    """TotalSegmentator's abdominal CT (3 mm, RAS NIfTI) and its label map."""
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    return (
        read_nifti(folder / "example_ct.nii.gz", modality="CT"),
        read_nifti(folder / "example_seg_fast_force_split.nii.gz"),
    )
