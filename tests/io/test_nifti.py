"""NIfTI in and out: affine and voxels preserved, broken files refused."""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from lrc.io import InvalidVoxels, UnsupportedInput, Volume, read_nifti, read_volume, write_nifti


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


def crafted(tmp_path: Path, suffix: str, side: int) -> Path:
    """A real 4x4x4 NIfTI whose header claims ``side``^3 int16 voxels (the data stays 128 bytes)."""
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp_path / "small.nii")
    raw = bytearray((tmp_path / "small.nii").read_bytes())
    raw[40:56] = struct.pack("<8h", 3, side, side, side, 1, 1, 1, 1)  # dim
    path = tmp_path / f"crafted{suffix}"
    path.write_bytes(gzip.compress(bytes(raw)) if suffix.endswith(".gz") else bytes(raw))
    return path


@pytest.mark.parametrize(("suffix", "room"), [(".nii", "the file holds 128"), (".nii.gz", "inflates to")])
def test_header_claiming_more_than_the_file_holds_is_refused_before_reading(tmp_path: Path, suffix: str, room: str):
    path = crafted(tmp_path, suffix, 1000)  # 2 GB claimed by a file of a few hundred bytes
    tracemalloc.start()
    try:
        with pytest.raises(UnsupportedInput, match=f"claims 2000000000 bytes of voxels .*{room}"):
            read_nifti(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024**2  # nibabel would have allocated the 2 GB it was told to fill


def test_voxel_limit_and_the_most_compressible_real_file(tmp_path: Path):
    zeros = Volume(np.zeros((256, 256, 256), np.uint8), np.eye(4))  # 16 MB of zeros, gzip -9: deflate's best
    plain = write_nifti(zeros, tmp_path / "zeros.nii")
    path = tmp_path / "zeros.nii.gz"
    path.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=9))
    assert path.stat().st_size * 1000 < 256**3  # within 3 % of the 1032:1 bound, and read
    assert read_nifti(path, max_voxels=256**3).shape == (256, 256, 256)
    with pytest.raises(UnsupportedInput, match="16777216 voxels, over the reader's limit of 16777215"):
        read_nifti(path, max_voxels=256**3 - 1)


def test_nan_refused(tmp_path: Path):
    data = np.zeros((4, 4, 4), dtype=np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii")
    with pytest.raises(InvalidVoxels, match="1 voxels are NaN"):
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
