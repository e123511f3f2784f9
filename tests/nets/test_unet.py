"""The U-Net and its contrastive wrapper."""

from __future__ import annotations

import pytest
import torch

from lrc.nets.unet import ContrastiveUNet, UNet, decode, encode

SMALL = (8, 8, 16, 16, 32, 8)


@pytest.mark.parametrize(("dims", "shape"), [(2, (2, 1, 32, 48)), (3, (1, 1, 32, 32, 16))])
def test_features_and_full_forward_agree(dims, shape):
    torch.manual_seed(0)
    net = UNet(dims, 1, 3, SMALL).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        features = decode(net, encode(net, x))
        assert torch.allclose(net.final_conv(features), net(x), atol=1e-6)
    assert features.shape == (shape[0], SMALL[5], *shape[2:])


def test_contrastive_heads():
    net = ContrastiveUNet(UNet(2, 1, 2, SMALL), dim=24)
    global_embedding, features = net(torch.rand(3, 1, 32, 32))
    assert global_embedding.shape == (3, 24)
    assert features is not None
    assert features.shape == (3, SMALL[5], 32, 32)
    assert torch.allclose(global_embedding.norm(dim=1), torch.ones(3), atol=1e-5)
    dense = net.dense_embedding(features)
    assert dense.shape == (3, 24, 32, 32)
    assert torch.allclose(dense.norm(dim=1), torch.ones(3, 32, 32), atol=1e-5)
    # The head on sampled pixels equals the head on the whole map (1x1 convolutions).
    pixels = features[1, :, 5, 7][None]  # 1 x C
    assert torch.allclose(net.project_local(pixels)[0], dense[1, :, 5, 7], atol=1e-6)
    only_global, none = net(torch.rand(3, 1, 32, 32), local=False)
    assert none is None
    assert only_global.shape == (3, 24)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spatial_dims": 4}, "spatial_dims"),
        ({"features": (8, 8)}, "6 feature sizes"),
        ({"out_channels": 1}, "background"),
    ],
)
def test_argument_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)
