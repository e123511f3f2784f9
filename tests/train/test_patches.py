"""Training patch samplers: shapes, foreground oversampling, padding of small volumes."""

from __future__ import annotations

import numpy as np
import torch

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
    empty_rows = (images.abs().sum(dim=(1, 3, 4)) == 0).sum(dim=1)  # per patch; flips may move the padding
    assert empty_rows.tolist() == [12] * 4  # 32 - 20 rows of padding beyond the volume
