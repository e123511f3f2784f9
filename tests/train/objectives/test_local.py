"""The LRC local objective: the supervised-contrastive loss by hand when regions are perfectly told apart."""

from __future__ import annotations

import math

import pytest
import torch
from numpy.testing import assert_allclose

from lrc.train.objectives import Views
from lrc.train.objectives.local import LocalContrastObjective
from tests.train.objectives.conftest import DIM, batch_of, config, identity_local_head, stripes

REGIONS, PIXELS, TEMPERATURE = 3, 4, 0.1


def _aligned_batch(online):
    """Two identical views of 2 images, 3 stripes each; each pixel's features are the one-hot of its region."""
    maps = stripes(2, 32, REGIONS)  # B x S x S, ids 1..6
    image = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    one_hot = torch.nn.functional.one_hot(maps, DIM).movedim(-1, 1).float()  # B x C x S x S
    return batch_of(Views(image, image, maps, maps), online, dense=torch.cat([one_hot, one_hot]))


@pytest.mark.parametrize(
    ("negatives", "others"),
    [
        ("batch", 2 * REGIONS * 2 * PIXELS - 2 * PIXELS),  # every other sampled pixel of the batch
        ("image", REGIONS * 2 * PIXELS - 2 * PIXELS),  # only those of the same image
    ],
)
def test_regions_told_apart_give_the_loss_by_hand(online, negatives, others):
    identity_local_head(online)
    settings = config(
        method="lrc",
        regions_per_image=REGIONS,
        pixels_per_region=PIXELS,
        temperature_local=TEMPERATURE,
        local_negatives=negatives,
        lambda_local=0.5,
    )
    objective = LocalContrastObjective(settings, online)
    value, extra = objective.loss(_aligned_batch(online))
    # each anchor: 2M - 1 positives at cosine 1, ``others`` negatives at cosine 0
    positives = 2 * PIXELS - 1
    expected = -(1 / TEMPERATURE - math.log(positives * math.exp(1 / TEMPERATURE) + others))
    assert_allclose(float(value.detach()), expected, rtol=1e-5)
    assert extra == {"regions": float(REGIONS)}
    assert objective.weight == 0.5


def test_mixed_up_regions_cost_more(online):
    identity_local_head(online)
    settings = config(method="lrc", regions_per_image=REGIONS, pixels_per_region=PIXELS)
    objective = LocalContrastObjective(settings, online)
    aligned = _aligned_batch(online)
    assert aligned.dense is not None
    noisy = aligned.dense + torch.rand(aligned.dense.shape, generator=torch.Generator().manual_seed(4))
    shuffled = batch_of(aligned.views, online, dense=noisy)
    assert float(objective.loss(shuffled)[0].detach()) > float(objective.loss(aligned)[0].detach())


def test_the_dense_features_are_required(online):
    objective = LocalContrastObjective(config(method="lrc"), online)
    maps = stripes(2, 32, REGIONS)
    image = torch.rand(2, 1, 32, 32)
    with pytest.raises(RuntimeError, match=r"needs the dense features \(Need.DENSE\)"):
        objective.loss(batch_of(Views(image, image, maps, maps), online))
