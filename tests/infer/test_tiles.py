"""2D sliding-window inference: tiles cover every pixel, and a context-free network gives the whole-slice result."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lrc.infer import Predictor
from lrc.infer.tiles import tile_starts, tiled_forward
from lrc.io import Volume
from lrc.nets.unet import UNet
from tests.infer.test_predictor import card_for


@pytest.mark.parametrize(("size", "tile"), [(96, 64), (97, 64), (288, 128), (130, 32), (64, 64), (40, 64)])
def test_tiles_cover_the_side_with_half_a_tile_of_overlap(size: int, tile: int):
    starts = tile_starts(size, tile)
    assert starts[0] == 0
    assert starts[-1] + min(tile, size) == size
    assert all(0 < b - a <= tile // 2 for a, b in itertools.pairwise(starts))


def test_a_context_free_network_gives_the_whole_slice_logits():
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(1, 3, 1)  # each pixel's logits depend on that pixel only
    batch = torch.rand(2, 1, 96, 80)
    with torch.no_grad():
        assert_allclose(tiled_forward(pointwise, batch, 32).numpy(), pointwise(batch).numpy(), atol=1e-5)
        assert_allclose(tiled_forward(pointwise, batch, 96).numpy(), pointwise(batch).numpy(), atol=1e-6)


def test_tiles_see_only_their_window():
    """A network whose output is its input's mean: tiled, each pixel mixes the means of its windows."""

    def mean(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x)

    batch = torch.zeros(1, 1, 64, 64)
    batch[..., :32, :32] = 1.0  # bright top-left quarter
    tiled = tiled_forward(mean, batch, 32)
    assert tiled[0, 0, 0, 0] > 0.5 > tiled[0, 0, -1, -1]  # a whole-slice pass gives 0.25 everywhere


def test_predictor_tiles_keep_the_grid_and_a_tile_as_large_as_the_slice_changes_nothing():
    torch.manual_seed(0)
    net = UNet(2, 1, 2, (4, 4, 8, 8, 16, 4)).eval()
    volume = Volume(np.random.default_rng(2).integers(-300, 400, (70, 60, 4)).astype(np.int16), np.eye(4), "CT")
    card = card_for(net, (2.0, 2.0, None), patch=[32, 32])
    whole = Predictor(net, card, "cpu").predict(volume)
    tiled = Predictor(net, card, "cpu", tile=32).predict(volume)
    large = Predictor(net, card, "cpu", tile=48).predict(volume)  # the 35 x 30 model grid pads to 48
    assert tiled.shape == whole.shape == volume.shape
    assert_allclose(tiled.affine, volume.affine)
    assert set(np.unique(tiled.array)) <= {0, 3}
    assert np.array_equal(large.array, whole.array)
    assert not np.array_equal(tiled.array, whole.array)  # instance norms see other statistics in a tile


def test_tile_must_suit_the_network():
    net = UNet(2, 1, 2, (4, 4, 8, 8, 16, 4))
    with pytest.raises(ValueError, match="multiple of 16"):
        Predictor(net, card_for(net, (2.0, 2.0, None)), "cpu", tile=40)
