"""NIfTI in and out: affine and voxels preserved, broken files refused."""

from __future__ import annotations

import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from lrc.io import UnsupportedInput, Volume, read_nifti, read_volume, write_nifti


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_dicom_to_nifti_round_trip(shared_data: Path, tmp_path: Path, suffix: str):
    volume = read_volume(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")
    path = write_nifti(volume, tmp_path / f"ct{suffix}")
    back = read_nifti(path)
    assert_array_equal(back.array, volume.array)
    assert back.array.dtype == volume.array.dtype
    assert_allclose(back.affine, volume.affine, atol=1e-5)
    header = nib.load(path).header
    assert int(header["sform_code"]) == 1
    assert int(header["qform_code"]) == 1
    assert header.get_xyzt_units()[0] == "mm"


def test_real_totalsegmentator_ct(shared_data: Path):
    volume = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz", modality="CT")
    assert volume.shape == (122, 101, 112)
    assert_allclose(volume.spacing, (3.0, 3.0, 3.0), atol=1e-4)
    labels = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_seg_fast_force_split.nii.gz")
    assert labels.array.dtype == np.uint8
    assert int((labels.array == 5).sum()) == 41692  # liver
    assert 40 < volume.array[labels.array == 5].mean() < 150


def test_modality_inferred_from_hounsfield_units(shared_data: Path):
    ct = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz")
    assert ct.modality == "CT"
    assert any("taken as CT" in w for w in ct.warnings)
    mr_path = shared_data / "nifti" / "totalseg_mr_abdomen" / "example_mr_sm.nii.gz"
    mr = read_nifti(mr_path)
    assert mr.modality == "OT"  # min -47: not CT; windowed by percentiles
    labels = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_seg.nii.gz")
    assert labels.modality == "OT"
    assert (
        read_nifti(shared_data / "nifti" / "totalseg_mr_abdomen" / "example_mr_sm.nii.gz", modality="MR").modality
        == "MR"
    )


def test_random_bytes_refused(tmp_path: Path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(UnsupportedInput, match="broken.nii.gz: not a readable NIfTI"):
        read_nifti(path)


def test_nan_refused(tmp_path: Path):
    data = np.zeros((4, 4, 4), dtype=np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii")
    with pytest.raises(UnsupportedInput, match="1 voxels are NaN"):
        read_nifti(tmp_path / "nan.nii")


def test_4d_refused(tmp_path: Path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), dtype=np.int16), np.eye(4)), tmp_path / "t.nii")
    with pytest.raises(UnsupportedInput, match=r"shape \(4, 4, 4, 3\)"):
        read_nifti(tmp_path / "t.nii")


def test_singular_affine_refused(tmp_path: Path):
    image = nib.Nifti1Image(np.zeros((4, 4, 4), dtype=np.int16), np.eye(4))
    nib.save(image, tmp_path / "flat.nii")
    raw = bytearray((tmp_path / "flat.nii").read_bytes())
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw[:348])))
    header["qform_code"] = 0
    header["sform_code"] = 1
    header["srow_z"] = [0, 0, 0, 0]  # a flat, singular sform
    raw[:348] = header.binaryblock
    (tmp_path / "flat.nii").write_bytes(bytes(raw))
    with pytest.raises(UnsupportedInput, match="singular"):
        read_nifti(tmp_path / "flat.nii")


def test_write_refuses_other_suffix(tmp_path: Path):
    with pytest.raises(ValueError, match="ends in .nii"):
        write_nifti(Volume(np.zeros((2, 2, 2)), np.eye(4)), tmp_path / "x.img")
