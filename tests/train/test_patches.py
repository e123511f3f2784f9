"""Training patch samplers: shapes, foreground oversampling, padding of small volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrc.train.finetune_config import SpatialAugment
from lrc.train.patches import SlicePatchSampler, VolumePatchSampler
from lrc.train.slices import SliceSet


def test_slice_patches_oversample_foreground():
    labels = np.zeros((20, 64, 64), dtype=np.uint8)
    labels[3, 40:44, 10:14] = 2  # one small organ on one slice
    slices = SliceSet(np.random.default_rng(0).random((20, 64, 64)).astype(np.float16), None, labels, [])
    sampler = SlicePatchSampler(slices, 32, 64, 1.0, np.random.default_rng(0))
    images, targets = sampler.batch(torch.device("cpu"))
    assert images.shape == (64, 1, 32, 32)
    assert targets.dtype == torch.long
    assert bool(((targets == 2).flatten(1).any(dim=1)).all())  # every patch holds the organ
    uniform = SlicePatchSampler(slices, 32, 64, 0.0, np.random.default_rng(0))
    assert (uniform.batch(torch.device("cpu"))[1] == 2).flatten(1).any(dim=1).float().mean() < 0.5


def test_volume_patches_pad_small_volumes():
    image = np.random.default_rng(1).random((20, 24, 8)).astype(np.float16)
    labels = np.zeros((20, 24, 8), dtype=np.uint8)
    labels[5:8, 5:8, 2:4] = 1
    sampler = VolumePatchSampler([(image, labels)], (32, 32, 16), 4, 1.0, np.random.default_rng(0))
    images, targets = sampler.batch(torch.device("cpu"))
    assert images.shape == (4, 1, 32, 32, 16)
    assert bool((targets == 1).flatten(1).any(dim=1).all())
    empty_rows = (images.abs().sum(dim=(1, 3, 4)) == 0).sum(dim=1)  # per patch
    assert empty_rows.tolist() == [12] * 4  # 32 - 20 rows of padding beyond the volume


def _organ_slices() -> SliceSet:
    """12 slices of a 64 x 64 canvas: a gradient image and a 16 x 8 organ (class 3) at its centre."""
    rows, columns = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    image = np.broadcast_to((rows * 64 + columns) / 4096, (12, 64, 64)).astype(np.float16)
    labels = np.zeros((12, 64, 64), dtype=np.uint8)
    labels[:, 24:40, 28:36] = 3
    return SliceSet(np.ascontiguousarray(image), None, labels, [])


def test_spatial_augment_at_scale_one_cuts_the_plain_patch():
    # the same draws: a scale range of (1, 1 + 1e-9) and no rotation resample exactly the crop
    slices = _organ_slices()
    plain = SlicePatchSampler(slices, 32, 16, 0.5, np.random.default_rng(3), flip=True)
    warped = SlicePatchSampler(
        slices, 32, 16, 0.5, np.random.default_rng(3), SpatialAugment((1.0, 1.0 + 1e-9)), flip=True
    )
    torch.manual_seed(0)
    images, targets = plain.batch(torch.device("cpu"))
    torch.manual_seed(0)
    images_w, targets_w = warped.batch(torch.device("cpu"))
    assert torch.equal(targets, targets_w)
    assert torch.allclose(images, images_w, atol=1e-3)  # the flips included


@pytest.mark.parametrize("spatial", [None, SpatialAugment((1.0, 1.0 + 1e-9))], ids=["crop", "warp"])
def test_without_flips_the_same_patches_keep_their_side(spatial: SpatialAugment | None):
    slices = _organ_slices()  # its image rises along the rows, so a mirrored patch falls
    flipped = SlicePatchSampler(slices, 32, 16, 0.5, np.random.default_rng(3), spatial, flip=True)
    kept = SlicePatchSampler(slices, 32, 16, 0.5, np.random.default_rng(3), spatial)  # the default: no flips
    torch.manual_seed(0)
    some, _ = flipped.batch(torch.device("cpu"))
    torch.manual_seed(0)
    none, _ = kept.batch(torch.device("cpu"))

    def falls(images: torch.Tensor) -> torch.Tensor:
        return (images[:, 0, 1:] - images[:, 0, :-1]).mean(dim=(1, 2)) < 0  # per patch

    mirrored = falls(some)
    assert 0 < int(mirrored.sum()) < 16
    assert not bool(falls(none).any())
    assert torch.allclose(some[~mirrored], none[~mirrored], atol=1e-3)  # the same draws cut the same patches
    assert torch.allclose(some[mirrored], none[mirrored].flip(2), atol=1e-3)


def test_volume_patches_without_flips_keep_their_side():
    rows = np.arange(16, dtype=np.float16)[:, None, None] / 16
    image = np.broadcast_to(rows, (16, 16, 16)).astype(np.float16)
    labels = np.ones((16, 16, 16), dtype=np.uint8)
    for flip, expected in ((True, True), (False, False)):
        sampler = VolumePatchSampler([(image, labels)], (16, 16, 16), 32, 0.5, np.random.default_rng(0), flip)
        images, _ = sampler.batch(torch.device("cpu"))
        falls = (images[:, 0, 1:] - images[:, 0, :-1]).mean(dim=(1, 2, 3)) < 0
        assert bool(falls.any()) is expected


def test_spatial_augment_scales_and_rotates_the_organ():
    slices = _organ_slices()
    zoomed = SlicePatchSampler(slices, 32, 64, 1.0, np.random.default_rng(0), SpatialAugment((2.0, 2.0)))
    area = (zoomed.batch(torch.device("cpu"))[1] == 3).flatten(1).sum(dim=1).float()
    assert torch.allclose(area, torch.full_like(area, 16 * 8 / 4), atol=4)  # twice the field: a quarter the area
    turned = SlicePatchSampler(slices, 32, 64, 1.0, np.random.default_rng(0), SpatialAugment(rotate_degrees=90))
    targets = turned.batch(torch.device("cpu"))[1]
    assert set(targets.unique().tolist()) <= {0, 3}
    area = (targets == 3).flatten(1).sum(dim=1).float()
    assert 100 < area.min() <= area.max() < 150  # the organ's 128 pixels, turned (nearest sampling)
    row_extent = (targets == 3).any(dim=3).sum(dim=2).flatten().float()  # rows the organ spans per patch
    assert row_extent.min() < 12 < 15 < row_extent.max()  # some patches turned it on its side, some not


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"scale": (0.0, 1.0)}, "augment_scale must be"),
        ({"scale": (1.5, 1.2)}, "augment_scale must be"),
        ({"scale": (1.0, 4.5)}, "augment_scale must be"),
        ({"rotate_degrees": -1.0}, "augment_rotate must be"),
        ({"rotate_degrees": 181.0}, "augment_rotate must be"),
    ],
)
def test_spatial_augment_refuses_bad_ranges(changes, needle):
    with pytest.raises(ValueError, match=needle):
        SpatialAugment(**changes)
