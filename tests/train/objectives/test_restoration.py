"""The restoration objective: the mean squared error of the image head against the clean views."""

from __future__ import annotations

import pytest
import torch
from numpy.testing import assert_allclose

from lrc.nets.unet import ContrastiveUNet, UNet
from lrc.train.objectives import Views
from lrc.train.objectives.restoration import RestorationObjective
from tests.train.objectives.conftest import DIM, batch_of, config, stripes
from tests.train.recipes import SMALL


@pytest.mark.parametrize(("offset", "expected"), [(0.0, 0.0), (0.5, 0.25), (-0.2, 0.04)])
def test_error_of_a_head_that_copies_one_channel(online, offset, expected):
    assert online.restore_head is not None
    with torch.no_grad():
        online.restore_head.weight.zero_()
        online.restore_head.weight[0, 0] = 1.0  # restored = channel 0 of the features
        online.restore_head.bias.zero_()
    clean = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(6))  # 2B x 1 x S x S
    dense = torch.cat([clean + offset, torch.zeros(4, DIM - 1, 32, 32)], dim=1)  # 2B x C x S x S
    maps = stripes(2, 32, 2)
    views = Views(clean[:2], clean[2:], maps, maps, clean=clean)
    objective = RestorationObjective(config(restore_weight=3.0), online)
    value, _ = objective.loss(batch_of(views, online, dense=dense))
    assert_allclose(float(value.detach()), expected, rtol=1e-5, atol=1e-7)
    assert objective.weight == 3.0


def test_a_network_without_an_image_head_is_refused():
    with pytest.raises(ValueError, match="needs a network with an image head"):
        RestorationObjective(config(restore_weight=1.0), ContrastiveUNet(UNet(2, 1, 2, SMALL), DIM))


def test_the_clean_views_are_required(online):
    maps, image = stripes(2, 32, 2), torch.rand(2, 1, 32, 32)
    batch = batch_of(Views(image, image, maps, maps), online, dense=torch.zeros(4, DIM, 32, 32))
    with pytest.raises(RuntimeError, match=r"clean views \(Need.CLEAN\)"):
        RestorationObjective(config(restore_weight=1.0), online).loss(batch)
