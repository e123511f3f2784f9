"""CPU inference copies compute what the original networks compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from lrc.infer import Predictor
from lrc.infer.cpu import as_group_norm, for_cpu
from lrc.io import Volume
from lrc.nets.unet import UNet
from tests.infer.test_predictor import SMALL, card_for


@pytest.mark.parametrize(
    ("norm", "shape"),
    [
        (nn.InstanceNorm2d(6, affine=True), (3, 6, 9, 7)),
        (nn.InstanceNorm3d(4, affine=True, eps=1e-3), (2, 4, 5, 6, 7)),
        (nn.InstanceNorm2d(5, affine=False), (2, 5, 8, 8)),
    ],
)
def test_group_norm_equals_instance_norm(norm: nn.modules.instancenorm._InstanceNorm, shape: tuple[int, ...]):
    torch.manual_seed(0)
    if norm.affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 2.0)
            norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(shape) * 3 + 1
    assert_allclose(as_group_norm(norm)(x).detach().numpy(), norm(x).detach().numpy(), atol=1e-5)


def test_refuses_running_statistics():
    with pytest.raises(ValueError, match="running statistics"):
        as_group_norm(nn.InstanceNorm2d(4, track_running_stats=True))


@pytest.mark.parametrize("dims", [2, 3])
def test_cpu_copy_matches_and_leaves_the_original(dims: int):
    torch.manual_seed(0)
    net = UNet(dims, 1, 3, SMALL).eval()
    fast = for_cpu(net, dims)
    assert not any(isinstance(m, nn.GroupNorm) for m in net.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in fast.modules())
    x = torch.rand((2, 1, 32, 32) if dims == 2 else (1, 1, 32, 32, 32))
    with torch.no_grad():
        assert_allclose(fast(x).numpy(), net(x).numpy(), atol=1e-4)


def test_predictor_labels_do_not_depend_on_the_cpu_copy():
    torch.manual_seed(0)
    net = UNet(2, 1, 2, SMALL)
    card = card_for(net, (1.0, 1.0, None))
    volume = Volume(np.random.default_rng(2).integers(-300, 400, (40, 36, 6)).astype(np.int16), np.eye(4), "CT")
    fast = Predictor(net, card, "cpu").predict(volume)
    plain = Predictor(net, card, "cpu", fast_cpu=False).predict(volume)
    assert len(np.unique(plain.array)) == 2
    assert (fast.array == plain.array).mean() > 0.999


@pytest.mark.parametrize(
    ("norm", "shape", "memory_format"),
    [
        (nn.InstanceNorm2d(6, affine=True), (2, 6, 16, 16), torch.channels_last),
        (nn.InstanceNorm3d(4, affine=True), (1, 4, 8, 8, 8), torch.channels_last_3d),
    ],
)
def test_group_norm_on_channels_last_keeps_small_variances(
    norm: nn.modules.instancenorm._InstanceNorm, shape: tuple[int, ...], memory_format: torch.memory_format
):
    # Channels whose mean is far above their spread (an air-only slice after a conv and its bias):
    # PyTorch's channels-last CPU group norm computes E[x^2] - E[x]^2 and loses the variance.
    torch.manual_seed(0)
    x = torch.randn(shape) * 0.1 + 100.0
    group = as_group_norm(norm)
    with torch.no_grad():
        expected = norm(x).numpy()
        assert_allclose(group(x.contiguous(memory_format=memory_format)).numpy(), expected, atol=1e-3)


def test_cpu_copy_matches_on_a_mostly_empty_slice():
    # A slice that is air below the window everywhere but a small square: windowed to zeros.
    torch.manual_seed(0)
    net = UNet(2, 1, 3, SMALL).eval()
    x = torch.zeros((2, 1, 64, 64))  # b x 1 x X x Y
    x[:, :, 24:40, 24:40] = 0.5
    with torch.no_grad():
        expected = net(x).numpy()
        fast = for_cpu(net, 2)(x.contiguous(memory_format=torch.channels_last)).numpy()
    assert_allclose(fast, expected, atol=1e-3)
