"""The decorrelation objective over every pixel of both views: 1 for copies of one signal, 0 for orthogonal ones."""

from __future__ import annotations

import pytest
import torch
from numpy.testing import assert_allclose
from scipy.linalg import hadamard

from lrc.train.objectives import Views
from lrc.train.objectives.decorrelation import DecorrelationObjective
from tests.train.objectives.conftest import DIM, batch_of, config, stripes


def _dense(channels: torch.Tensor) -> torch.Tensor:
    """``2 x C x 32 x 32`` features from ``2048 x C`` pixel values (both views of one image)."""
    return channels.T.reshape(DIM, 2, 32, 32).movedim(1, 0).contiguous()


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [
        (torch.randn(2048, 1, generator=torch.Generator().manual_seed(5)).expand(2048, DIM), 1.0),  # one signal
        (torch.from_numpy(hadamard(2048)[:, 1 : DIM + 1]).float(), 0.0),  # orthogonal, zero-mean columns
    ],
)
def test_correlation_of_known_channels(online, pixels, expected):
    objective = DecorrelationObjective(config(decorrelation_weight=2.0), online)
    image, maps = torch.rand(1, 1, 32, 32), stripes(1, 32, 2)
    value, extra = objective.loss(batch_of(Views(image, image, maps, maps), online, dense=_dense(pixels)))
    assert_allclose(float(value.detach()), expected, atol=1e-5)
    assert (extra, objective.weight) == ({}, 2.0)
