"""The supervised objective: Dice + cross-entropy of the backbone on the first view."""

from __future__ import annotations

import pytest
import torch

from lrc.train.objectives import Views
from lrc.train.objectives.supervised import SupervisedObjective
from tests.train.objectives.conftest import batch_of, config, stripes


def _sure_of_background(online) -> None:
    """The backbone's output layer says background (class 0) everywhere, with a logit margin of 50.

    The other classes' probabilities, e^-50, vanish beside the Dice loss's smoothing terms."""
    with torch.no_grad():
        online.backbone.final_conv.weight.zero_()
        online.backbone.final_conv.bias.copy_(torch.tensor([50.0, 0.0, 0.0]))


def test_a_right_segmentation_costs_nothing_and_a_wrong_one_much(online):
    _sure_of_background(online)
    objective = SupervisedObjective(config(method="supervised+lrc"), online)
    image, maps = torch.rand(2, 1, 32, 32), stripes(2, 32, 2)
    right = Views(image, image, maps, maps, target=torch.zeros(2, 1, 32, 32, dtype=torch.long))
    wrong = Views(image, image, maps, maps, target=torch.ones(2, 1, 32, 32, dtype=torch.long))
    assert float(objective.loss(batch_of(right, online))[0].detach()) < 1e-6
    assert float(objective.loss(batch_of(wrong, online))[0].detach()) > 50.0  # cross-entropy 50, Dice loss near 2/3
    assert objective.weight == 1.0


def test_labels_are_required(online):
    image, maps = torch.rand(2, 1, 32, 32), stripes(2, 32, 2)
    objective = SupervisedObjective(config(method="supervised+lrc"), online)
    with pytest.raises(RuntimeError, match=r"needs labels \(Need.LABELS\)"):
        objective.loss(batch_of(Views(image, image, maps, maps), online))
