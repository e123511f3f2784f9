"""3D pre-training data: per-slice super-pixels with ids unique across the volume, and blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lrc.intensity import IntensityWindow
from lrc.io import read_nifti
from lrc.superpixels import SuperpixelCache
from lrc.train.blocks import BlockSampler, build_region_volumes, renumber


@pytest.fixture(scope="module")
def region_volumes(shared_data: Path, tmp_path_factory):
    ct = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz", modality="CT")
    cache = SuperpixelCache(tmp_path_factory.mktemp("cache"))
    return build_region_volumes([ct], IntensityWindow.for_modality("CT"), (6.0, 6.0), 64, cache)


def test_region_ids_are_unique_per_slice(region_volumes):
    (volume,) = region_volumes
    assert volume.image.shape == volume.regions.shape
    assert volume.image.shape[:2] == (64, 64)
    seen: set[int] = set()
    for k in range(volume.regions.shape[2]):
        ids = set(np.unique(volume.regions[:, :, k]).tolist()) - {0}
        assert not ids & seen  # no region spans two slices
        seen |= ids
    assert len(seen) > 10 * len(volume.body) // 2  # several regions on body slices
    assert (volume.regions[volume.image < 0.02] == 0).mean() > 0.9  # air is mostly background
    assert len(volume.body) > 0


def test_renumber_keeps_background_and_order():
    regions = torch.tensor([[0, 70, 70], [5, 900, 5]])
    assert torch.equal(renumber(regions), torch.tensor([[0, 2, 2], [1, 3, 1]]))
    assert torch.equal(renumber(torch.tensor([4, 9])), torch.tensor([1, 2]))  # no background present


def test_blocks(region_volumes):
    depth = region_volumes[0].image.shape[2] + 5  # longer than the volume: padded
    sampler = BlockSampler(region_volumes, depth, 3, np.random.default_rng(0))
    images, maps, labels = sampler.batch(torch.device("cpu"))
    assert images.shape == (3, 1, 64, 64, depth)
    assert maps.shape == (3, 64, 64, depth)
    assert labels is None
    assert maps.dtype == torch.long
    assert int(maps[:, :, :, -5:].abs().sum()) == 0  # padding is background
    for block in maps:
        present = torch.unique(block)
        assert torch.equal(present, torch.arange(len(present)))  # renumbered 0..R
    again = BlockSampler(region_volumes, 8, 3, np.random.default_rng(0)).batch(torch.device("cpu"))
    same = BlockSampler(region_volumes, 8, 3, np.random.default_rng(0)).batch(torch.device("cpu"))
    assert torch.equal(again[0], same[0])
    with pytest.raises(ValueError, match="depth >= 1"):
        BlockSampler(region_volumes, 0, 3, np.random.default_rng(0))
