"""2D sliding-window inference: tiles cover every pixel, and a context-free network gives the whole-slice result."""

from __future__ import annotations

import itertools
from dataclasses import replace

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


def test_tile_patch_is_the_training_patch_and_with_tile_shares_the_network():
    net = UNet(2, 1, 2, (4, 4, 8, 8, 16, 4)).eval()
    predictor = Predictor(net, card_for(net, (2.0, 2.0, None), patch=[32, 32]), "cpu")
    tiled = predictor.with_tile("patch")
    assert (predictor.tile, tiled.tile) == (None, 32)
    assert (tiled.with_tile(None).tile, predictor.with_tile(48).tile) == (None, 48)
    assert tiled.net is predictor.net
    volume = Volume(np.random.default_rng(2).integers(-300, 400, (70, 60, 4)).astype(np.int16), np.eye(4), "CT")
    direct = Predictor(net, predictor.card, "cpu", tile=32)
    assert np.array_equal(tiled.predict(volume).array, direct.predict(volume).array)
    with pytest.raises(ValueError, match="no training patch"):
        Predictor(net, card_for(net, (2.0, 2.0, None)), "cpu", tile="patch")
    with pytest.raises(ValueError, match="'slice', a side or None"):
        predictor.with_tile("slices")


def test_by_default_a_predictor_runs_as_its_card_says():
    """``tile="model"`` (the default): the card's ``inference_tile``; ``"slice"`` or None: whole slices."""
    net = UNet(2, 1, 2, (4, 4, 8, 8, 16, 4)).eval()
    card = replace(card_for(net, (2.0, 2.0, None), patch=[32, 32]), inference_tile=32)
    predictor = Predictor(net, card, "cpu")
    assert (predictor.tile, predictor.with_tile("slice").tile, predictor.with_tile(None).tile) == (32, None, None)
    assert predictor.with_tile("slice").with_tile("model").tile == 32
    assert Predictor(net, replace(card, inference_tile=None), "cpu").tile is None


def test_a_3d_model_takes_tile_patch_only():
    net = UNet(3, 1, 2, (4, 4, 8, 8, 16, 4))
    card = card_for(net, (2.0, 2.0, 2.0), patch=[32, 32, 16])
    assert Predictor(net, card, "cpu", tile="patch").tile is None  # it always slides windows of its patch
    with pytest.raises(ValueError, match="3D model"):
        Predictor(net, card, "cpu", tile=32)


def test_windows_run_stacked_within_the_batch_pixel_budget():
    calls: list[tuple[int, ...]] = []

    def pointwise(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x.repeat(1, 2, 1, 1)

    batch = torch.rand(3, 1, 96, 96)
    out = tiled_forward(pointwise, batch, 32)  # 5 x 5 windows of 32 x 32; 9 fit in the pixels of one 96 x 96
    assert_allclose(out.numpy(), batch.repeat(1, 2, 1, 1).numpy(), atol=1e-6)
    assert [c[0] for c in calls] == [27, 27, 21]
    assert all(c[1:] == (1, 32, 32) for c in calls)
