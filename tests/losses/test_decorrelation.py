"""The channel-correlation penalty against dimensional collapse."""

from __future__ import annotations

import pytest
import torch
from numpy.testing import assert_allclose

from lrc.losses import channel_correlation


def test_copies_of_one_signal_score_one_whatever_their_scale_and_sign():
    signal = torch.randn(500, 1)
    features = torch.cat([signal, -3 * signal, 0.1 * signal + 7], dim=1)
    assert_allclose(float(channel_correlation(features)), 1.0, atol=1e-4)


def test_independent_channels_score_near_zero():
    features = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0))
    assert float(channel_correlation(features)) < 1e-3


def test_hand_computed_pair():
    # two channels with correlation 0.5 by construction: c2 = 0.5 c1 + sqrt(0.75) z, c1 and z orthonormal
    c1 = torch.tensor([1.0, -1.0, 1.0, -1.0])
    z = torch.tensor([1.0, 1.0, -1.0, -1.0])
    features = torch.stack([c1, 0.5 * c1 + 0.75**0.5 * z], dim=1)
    assert_allclose(float(channel_correlation(features)), 0.25, atol=1e-4)


def test_a_constant_channel_counts_as_uncorrelated():
    signal = torch.randn(100, 1)
    features = torch.cat([signal, signal, torch.full((100, 1), 3.0)], dim=1)
    # pairs: (0, 1) correlated 1, (0, 2) and (1, 2) 0 -> 2 * 1 / (3 * 2)
    assert_allclose(float(channel_correlation(features)), 1 / 3, atol=1e-3)


def test_gradient_descent_decorrelates():
    torch.manual_seed(0)
    data = torch.randn(1000, 4)
    mix = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        mix.weight.copy_(torch.ones(4, 4) + 0.1 * torch.randn(4, 4))  # nearly rank 1: collapsed
    optimizer = torch.optim.SGD(mix.parameters(), lr=0.5)
    before = channel_correlation(mix(data)).item()
    for _ in range(200):
        optimizer.zero_grad()
        channel_correlation(mix(data)).backward()
        optimizer.step()
    assert before > 0.9
    assert channel_correlation(mix(data)).item() < 0.1 * before


@pytest.mark.parametrize("shape", [(10,), (1, 4), (10, 1), (2, 3, 4)])
def test_refuses_shapes_without_two_samples_and_two_channels(shape):
    with pytest.raises(ValueError, match="NC features"):
        channel_correlation(torch.randn(shape))
