"""Felzenszwalb super-pixels on real CT slices, and their cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.transform import resize

from lrc.intensity import IntensityWindow
from lrc.io import read_nifti
from lrc.superpixels import SuperpixelCache, SuperpixelParams, superpixels


@pytest.fixture(scope="module")
def ct_slice(shared_data: Path) -> np.ndarray:
    """An abdominal CT slice (122 x 101 at 3 mm), windowed, resized to 256 x 256."""
    ct = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz", modality="CT")
    windowed = IntensityWindow.for_modality("CT").apply(ct.array[:, :, 60])
    return resize(windowed, (256, 256), order=1).astype(np.float32)


def test_regions_cover_the_body_not_the_air(ct_slice: np.ndarray):
    regions = superpixels(ct_slice)
    count = int(regions.max())
    assert 10 <= count <= 200
    assert sorted(np.unique(regions)) == list(range(count + 1))  # numbered 1..R, 0 = dropped
    air = ct_slice < 0.02
    assert (regions[air] == 0).mean() > 0.9
    assert (regions[~air] > 0).mean() > 0.8


def test_parameters_scale_with_slice_area(ct_slice: np.ndarray):
    """The same anatomy at half or double the resolution gives a similar number of regions."""
    full = int(superpixels(ct_slice).max())
    for side in (128, 512):
        other = int(superpixels(resize(ct_slice, (side, side), order=1)).max())
        assert 0.7 < other / full < 1.4, (side, other, full)


def test_finer_scale_gives_more_regions(ct_slice: np.ndarray):
    coarse = superpixels(ct_slice, SuperpixelParams(scale=200))
    fine = superpixels(ct_slice, SuperpixelParams(scale=25))
    assert fine.max() > coarse.max()


def test_cache_computes_once(ct_slice: np.ndarray, tmp_path: Path):
    cache = SuperpixelCache(tmp_path)
    first = cache.get(ct_slice)
    second = SuperpixelCache(tmp_path).get(ct_slice)  # a new process would see the same files
    assert np.array_equal(first, second)
    assert np.array_equal(first, superpixels(ct_slice))
    assert (cache.hits, cache.misses) == (0, 1)
    assert len(list(tmp_path.rglob("*.npy"))) == 1
    other = SuperpixelCache(tmp_path, SuperpixelParams(scale=50))
    other.get(ct_slice)
    assert other.misses == 1  # other parameters, other entry
    assert len(list(tmp_path.rglob("*.npy"))) == 2


def test_refuses_3d():
    with pytest.raises(ValueError, match="2D slice"):
        superpixels(np.zeros((4, 4, 4)))


@pytest.mark.parametrize("params", [{"scale": 0}, {"scale": -5}, {"sigma": -1}, {"min_size": 0}])
def test_refuses_meaningless_parameters(params: dict):
    with pytest.raises(ValueError, match="scale > 0"):
        SuperpixelParams(**params)
