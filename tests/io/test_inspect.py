"""The inspecting readers (what the API checks uploads with) against the full readers: for every file, the same
verdict and message, or the same grid, modality, source and warnings, and memory that does not grow with the
image."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose
from pydicom.uid import JPEG2000Lossless, RLELossless

from lrc.io import ImageIOError, ReadOptions, dicom_pixels, read_nifti
from lrc.io import nifti as nifti_module
from lrc.io.dicom_read import inspect_dicom, read_dicom
from lrc.io.nifti import inspect_nifti, slabs
from tests.dicom_factory import line
from tests.io.nifti_files import edited_nifti, real_ct_block
from tests.reliability.large_inputs import nifti as large_nifti


@pytest.fixture(scope="module")
def real_ct(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 32 x 32 x 8 block of the real CT (int16 HU) and its affine (3 mm, RAS)."""
    return real_ct_block(shared_data)


def _with_nan(data: np.ndarray) -> np.ndarray:
    values = data.astype(np.float32)
    values[3:7, 3:5, 1] = np.nan
    values[30, 31, 7] = np.inf
    return values


def _beyond(data: np.ndarray) -> np.ndarray:
    values = data.astype(np.float64)
    values[5, 5, 6] = 3e38
    return values


NIFTI: dict[str, Callable[[np.ndarray, np.ndarray, Path], Path]] = {
    "ct": lambda d, a, f: edited_nifti(f / "ct.nii.gz", d, a),
    "labels-uint8": lambda d, a, f: edited_nifti(f / "labels.nii", (d > 0).astype(np.uint8), a),
    "air-so-ct": lambda d, a, f: edited_nifti(f / "air.nii", d - 800, a),
    "scaled": lambda d, a, f: edited_nifti(f / "scaled.nii", d, a, scl_slope=0.5, scl_inter=-3),
    "scaled-beyond": lambda d, a, f: edited_nifti(f / "huge.nii", d, a, scl_slope=1e30, scl_inter=0),
    "nan-and-inf": lambda d, a, f: edited_nifti(f / "nan.nii.gz", _with_nan(d), a),
    "beyond-the-bound": lambda d, a, f: edited_nifti(f / "beyond.nii", _beyond(d), a),
    "metres": lambda d, a, f: edited_nifti(f / "m.nii", d, np.diag([1e-3, 1e-3, 1e-3, 1]) @ a, xyzt_units=1),
    "one-volume-4d": lambda d, a, f: edited_nifti(f / "t1.nii", d[..., None], a),
    "two-volumes": lambda d, a, f: edited_nifti(f / "t2.nii", np.stack([d, d], axis=-1), a),
    "two-d": lambda d, a, f: edited_nifti(f / "2d.nii", d[:, :, 0], a),
    "empty": lambda d, a, f: edited_nifti(f / "empty.nii", d[:, :, :0], a),
    "singular": lambda d, a, f: edited_nifti(f / "s.nii", d, a, sform_code=1, qform_code=0, srow_y=[0, 0, 0, 0]),
    "too-small": lambda d, a, f: edited_nifti(f / "small.nii", np.ascontiguousarray(d[:1]), a),
    "complex": lambda d, a, f: edited_nifti(f / "complex.nii", d.astype(np.complex64), a),
    "pixdim-zero": lambda d, a, f: edited_nifti(f / "p.nii", d, a, pixdim=[1, 0, 3, 3, 1, 1, 1, 1], sform_code=0),
    "gzip-cut": lambda d, a, f: _cut(edited_nifti(f / "cut.nii.gz", d, a), 0.5),
    "claims-more": lambda d, a, f: _cut(edited_nifti(f / "claims.nii", d, a), 0.9),
}


def _cut(path: Path, fraction: float) -> Path:
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * fraction)])
    return path


def _outcome(read: Callable[[], Any]) -> tuple[str, str] | dict[str, Any]:
    """The error (type and message) or what is known of the volume."""
    try:
        volume = read()
    except ImageIOError as exc:
        return type(exc).__name__, str(exc)
    return {
        "shape": tuple(volume.shape),
        "affine": np.round(volume.affine, 9).tolist(),
        "modality": volume.modality,
        "source": volume.source,
        "warnings": volume.warnings,
    }


@pytest.mark.parametrize("slab", [nifti_module.SLAB_VOXELS, 5000, 7])
@pytest.mark.parametrize("case", list(NIFTI))
def test_nifti_inspection_agrees_with_reading(
    real_ct: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, slab: int
):
    path = NIFTI[case](*real_ct, tmp_path)
    monkeypatch.setattr(nifti_module, "SLAB_VOXELS", slab)  # whole planes, rows of a plane, parts of a row
    assert _outcome(lambda: inspect_nifti(path)) == _outcome(lambda: read_nifti(path))


@pytest.mark.parametrize(("shape", "voxels"), [((4, 3, 5), 1000), ((4, 3, 5), 24), ((4, 3, 5), 5), ((4, 3, 5), 3)])
def test_slabs_cover_the_grid_once_in_file_order(shape: tuple[int, int, int], voxels: int):
    order = np.arange(math.prod(shape)).reshape(shape, order="F")
    parts = [order[slab] for slab in slabs(shape, voxels)]
    assert all(part.size <= voxels for part in parts)
    assert np.array_equal(np.concatenate([p.ravel(order="F") for p in parts]), np.arange(order.size))


def test_inspecting_a_large_nifti_holds_one_slab(tmp_path: Path):
    """200 MB of int16 voxels (64 kB of gzip): the inspection's allocations stay near one slab (as float64)."""
    path = large_nifti(tmp_path / "zeros.nii.gz", (1024, 1024, 100), "int16")
    tracemalloc.start()
    try:
        info = inspect_nifti(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.shape == (1024, 1024, 100)
    assert peak < 4 * nifti_module.SLAB_VOXELS * 8, peak


def _truncated(paths: list[Path]) -> list[Path]:
    content = paths[1].read_bytes()
    paths[1].write_bytes(content[:-100])
    return paths


def _wrong_rows(paths: list[Path]) -> list[Path]:
    ds = pydicom.dcmread(paths[2])
    ds.Rows = 32  # the JPEG 2000 data still holds 64 x 64
    ds.save_as(paths[2])
    return paths


def _tilted(make_series: Callable[..., list[Path]]) -> list[Path]:
    return make_series([(0.0, 0.5 * k, 2.0 * k) for k in range(4)], folder="tilted")


DICOM: dict[str, tuple[Callable[[Callable[..., list[Path]]], list[Path]], dict[str, Any]]] = {
    "native": (lambda make: make(line(5)), {}),
    "rle": (lambda make: make(line(4), folder="rle", transfer_syntax=RLELossless), {}),
    "jpeg2000": (lambda make: make(line(4), folder="j2k", transfer_syntax=JPEG2000Lossless), {}),
    "many-compressed-planes": (lambda make: make(line(30), folder="many", transfer_syntax=RLELossless), {}),
    "float-rescale": (lambda make: make(line(3), folder="float", slope=0.5), {}),
    "no-uids": (lambda make: make(line(3), folder="nouid", uids=False), {}),
    "two-geometries": (lambda make: make(line(4), folder="mixed", sizes=[64, 64, 32, 32]), {}),
    "missing-slice": (lambda make: make([p for k, p in enumerate(line(6)) if k != 3], folder="gap"), {}),
    "tilted": (_tilted, {}),
    "tilt-corrected": (_tilted, {"correct_tilt": True}),
    "over-the-voxel-limit": (lambda make: make(line(4), folder="limit"), {"max_voxels": 64 * 64 * 4 - 1}),
    "truncated": (lambda make: _truncated(make(line(3), folder="cut")), {}),
    "cannot-be-decoded": (
        lambda make: _wrong_rows(make(line(4), folder="rows", transfer_syntax=JPEG2000Lossless)),
        {},
    ),
}


@pytest.mark.parametrize("case", list(DICOM))
def test_dicom_inspection_agrees_with_reading(make_series: Callable[..., list[Path]], tmp_path: Path, case: str):
    build, options = DICOM[case]
    paths = build(make_series)
    chosen = ReadOptions(extract_dir=tmp_path / "unzipped", **options)

    def outcomes(read: Callable[..., Any]) -> Any:
        try:
            result = read(paths, chosen)
        except ImageIOError as exc:
            return type(exc).__name__, str(exc)
        return [_outcome(lambda v=v: v) for v in result.volumes], [str(e) for e in result.errors], result.notes

    inspected, read = outcomes(inspect_dicom), outcomes(read_dicom)
    assert inspected == read


def test_dicom_inspection_grid_is_the_volumes(make_series: Callable[..., list[Path]], tmp_path: Path):
    paths = make_series(line(4), folder="oblique", orientation=(0.96, 0.28, 0, -0.28, 0.96, 0))
    options = ReadOptions(extract_dir=tmp_path / "unzipped")
    info, volume = inspect_dicom(paths, options).volumes[0], read_dicom(paths, options).volumes[0]
    assert_allclose(info.affine, volume.affine)
    assert info.spacing == volume.spacing


def test_large_compressed_planes_are_decoded_beside_this_process(
    make_series: Callable[..., list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Planes over LARGE_PLANE_PIXELS go to the decoder processes however few; a decoder that dies refuses them."""
    paths = make_series(line(2), folder="large", transfer_syntax=JPEG2000Lossless)
    options = ReadOptions(extract_dir=tmp_path / "unzipped", workers=2)
    monkeypatch.setattr(dicom_pixels, "LARGE_PLANE_PIXELS", 64 * 64 - 1)
    pools: list[int] = []
    real_pool = dicom_pixels._decoder_pool

    def counted(workers: int) -> Any:
        pools.append(workers)
        return real_pool(workers)

    monkeypatch.setattr(dicom_pixels, "_decoder_pool", counted)
    assert inspect_dicom(paths, options).volumes[0].shape == (64, 64, 2)
    assert pools == [2]

    class Dying:
        def map(self, *args: Any, **kwargs: Any) -> Any:
            raise BrokenProcessPool("killed")

    monkeypatch.setattr(dicom_pixels, "_decoder_pool", lambda workers: Dying())
    result = inspect_dicom(paths, options)
    assert not result.volumes
    assert "a decoder process died decoding planes of more than 4095 pixels" in str(result.errors[0])
