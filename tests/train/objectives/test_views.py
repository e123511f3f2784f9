"""Drawing the views in the form the objectives need: plain, with labels carried along, with clean views kept."""

from __future__ import annotations

import pytest
import torch

from lrc.train.objectives import Need, draw_views
from lrc.train.objectives.views import check_needs
from lrc.views import ViewConfig
from tests.train.objectives.conftest import config, stripes

STILL = ViewConfig(blur_sigma=(0.0, 0.0), noise_std=(0.0, 0.0))  # geometry only: intensities unchanged


def _slices() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(7))  # B x 1 x C x C
    return images, stripes(2, 64, 5)  # B x C x C, ids 1..10


def test_plain_views_have_no_extras():
    images, maps = _slices()
    views = draw_views(images, maps, None, frozenset({Need.DENSE}), config(), torch.Generator().manual_seed(0))
    assert views.first.shape == views.second.shape == (2, 1, 32, 32)
    assert views.map_1.shape == views.map_2.shape == (2, 32, 32)
    assert views.clean is None
    assert views.target is None
    labels = maps % 3
    ignored = draw_views(images, maps, labels, frozenset(), config(), torch.Generator().manual_seed(0))
    assert ignored.target is None  # labels nobody needs are left out
    assert torch.equal(ignored.first, views.first)


def test_labels_travel_with_the_super_pixels():
    images, maps = _slices()
    labels = maps % 3  # B x C x C: a class that is a function of the super-pixel
    views = draw_views(images, maps, labels, frozenset({Need.LABELS}), config(), torch.Generator().manual_seed(1))
    assert views.target is not None
    assert views.target.shape == (2, 1, 32, 32)
    assert torch.equal(views.target[:, 0], views.map_1 % 3)  # the same geometry moved both
    assert set(views.map_1.unique().tolist()) <= set(range(11))
    with pytest.raises(ValueError, match="need label maps and the batch has none"):
        draw_views(images, maps, None, frozenset({Need.LABELS}), config(), torch.Generator())


def test_clean_views_are_kept_and_the_shown_ones_have_hidden_cells():
    images, maps = _slices()
    settings = config(views=STILL, restore_weight=1.0, restore_mask=0.5)
    views = draw_views(images, maps, None, frozenset({Need.CLEAN}), settings, torch.Generator().manual_seed(2))
    assert views.clean is not None
    assert views.clean.shape == (4, 1, 32, 32)
    for shown, clean in ((views.first, views.clean[:2]), (views.second, views.clean[2:])):
        hidden = shown != clean  # B x 1 x S x S
        assert 0.2 < float(hidden.float().mean()) < 0.8  # about half the cells
        means = clean.mean(dim=(1, 2, 3))  # B: a hidden cell shows its view's mean
        for b in range(2):
            assert torch.allclose(shown[b][hidden[b]], means[b].expand(int(hidden[b].sum())))


def test_labels_and_clean_views_together_are_refused():
    with pytest.raises(ValueError, match="combine labels with clean"):
        check_needs({Need.LABELS, Need.CLEAN})
