"""Memory estimates of training jobs: what each term counts, on grids worked out by hand."""

from __future__ import annotations

import pytest

from lrc.nets.stages import DEFAULT_FEATURES
from lrc.train.memory import ACTIVATION_FACTOR, PROCESS, finetune_bytes, gib, pretrain_bytes

CT = ([512, 512, 300], [0.7, 0.7, 1.0])  # a common abdominal CT


def test_finetune_terms():
    estimate = finetune_bytes([CT, CT], spacing=1.4, canvas=256, batch_size=8, patch=128, features=DEFAULT_FEATURES)
    parts = estimate.parts
    assert parts["worker"] == PROCESS
    assert parts["cases read"] == 2 * 512 * 512 * 300 * 6  # float32 image + uint16 label map, each case
    assert parts["training slices"] == 600 * 256 * 256 * 3  # float16 + uint8 on the canvas, every slice
    assert parts["resampling"] == 256 * 256 * 300 * 4 * 2  # the largest volume at 1.4 mm, source and result
    assert parts["training step"] == 8 * 128 * 128 * 32 * ACTIVATION_FACTOR
    assert estimate.total == sum(parts.values())
    assert estimate.total < 4 * 1024**3  # the defaults on two CTs fit a small worker


def test_a_fine_spacing_is_counted_where_it_costs():
    coarse = finetune_bytes([CT], spacing=1.5, canvas=256, batch_size=8, patch=128, features=DEFAULT_FEATURES)
    fine = finetune_bytes([CT], spacing=0.001, canvas=256, batch_size=8, patch=128, features=DEFAULT_FEATURES)
    assert fine.parts["resampling"] == pytest.approx(coarse.parts["resampling"] * (1.5 / 0.001) ** 2, rel=1e-6)
    assert fine.total > 10 * 1024**4  # the 12 TiB a worker tried to allocate
    assert fine.describe().startswith("resampling")


def test_pretrain_local_loss_grows_with_the_square_of_its_samples():
    common = {"spacing": 1.5, "canvas": 256, "view_size": 192, "features": DEFAULT_FEATURES, "embedding_dim": 128}
    small = pretrain_bytes([CT], batch_size=16, queue_size=4096, regions_per_image=16, pixels_per_region=8, **common)
    large = pretrain_bytes([CT], batch_size=16, queue_size=4096, regions_per_image=32, pixels_per_region=8, **common)
    assert small.parts["local loss"] == (2 * 16 * 16 * 8) ** 2 * 16
    assert large.parts["local loss"] == 4 * small.parts["local loss"]
    assert small.parts["MoCo queue"] == 4096 * 128 * 4 * 2
    assert gib(1.5 * 1024**3) == "1.5 GiB"
