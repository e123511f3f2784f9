"""The plain-PyTorch BasicUNet computes what MONAI's computes, with the same weights.

Both run the same PyTorch operations in the same order on the same tensors, so outputs and
gradients are compared for exact equality: any difference means the twin does something else.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets import BasicUNet as MonaiBasicUNet
from numpy.testing import assert_allclose
from safetensors.torch import load_file
from torch import nn

import lrc
from lrc.io.nifti import read_nifti
from lrc.model_dirs.store import WEIGHTS, load_model
from lrc.nets.basic_unet import BasicUNet
from lrc.nets.stages import DEFAULT_FEATURES
from lrc.nets.unet import UNet

SMALL = (8, 8, 16, 16, 32, 8)
REDUCED = (16, 16, 32, 64, 128, 16)  # the starter model's
STARTER = Path(lrc.__file__).parent / "assets" / "starter_ct_abdomen"
EXACT = {"rtol": 0.0, "atol": 0.0}

# (spatial_dims, in_channels, out_channels, features, dropout, input shape); sizes that are not
# multiples of 16 make UpCat pad the upsampled features.
CASES = [
    (2, 1, 2, DEFAULT_FEATURES, 0.0, (2, 1, 32, 48)),
    (2, 1, 5, REDUCED, 0.0, (2, 1, 64, 32)),
    (2, 1, 5, REDUCED, 0.0, (2, 1, 37, 50)),
    (2, 3, 4, SMALL, 0.0, (3, 3, 33, 17)),
    (2, 2, 3, SMALL, 0.25, (2, 2, 47, 31)),
    (3, 1, 2, SMALL, 0.0, (1, 1, 32, 16, 16)),
    (3, 2, 3, SMALL, 0.0, (2, 2, 17, 20, 33)),
    (3, 1, 3, REDUCED, 0.0, (1, 1, 16, 35, 18)),
    (3, 1, 2, DEFAULT_FEATURES, 0.0, (1, 1, 16, 16, 32)),
    (3, 1, 2, SMALL, 0.25, (1, 1, 35, 16, 32)),
]


def _pair(
    dims: int, in_channels: int, out_channels: int, features: tuple[int, ...], dropout: float
) -> tuple[MonaiBasicUNet, BasicUNet]:
    """MONAI's network with random weights and the twin with the same weights (loaded strictly)."""
    torch.manual_seed(0)
    monai_net = MonaiBasicUNet(
        spatial_dims=dims, in_channels=in_channels, out_channels=out_channels, features=features, dropout=dropout
    )
    with torch.no_grad():  # norm weights away from their (1, 0) initialisation, so they matter
        for name, parameter in monai_net.named_parameters():
            if ".adn.N.weight" in name:
                parameter.uniform_(0.5, 1.5)
            elif ".adn.N.bias" in name:
                parameter.uniform_(-0.5, 0.5)
    twin = BasicUNet(dims, in_channels, out_channels, features, dropout=dropout)
    twin.load_state_dict(monai_net.state_dict(), strict=True)
    return monai_net, twin


def _run(net: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # the same dropout masks in both networks
    return net(x)


@pytest.mark.parametrize(("dims", "in_channels", "out_channels", "features", "dropout", "shape"), CASES)
def test_same_outputs_and_gradients(dims, in_channels, out_channels, features, dropout, shape):
    monai_net, twin = _pair(dims, in_channels, out_channels, features, dropout)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = monai_net.eval()(x)
        assert_allclose(twin.eval()(x).numpy(), expected.numpy(), **EXACT)
    assert expected.shape == (shape[0], out_channels, *shape[2:])

    monai_net.train(), twin.train()
    x_monai, x_twin = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_monai, out_twin = _run(monai_net, x_monai, seed=2), _run(twin, x_twin, seed=2)
    assert_allclose(out_twin.detach().numpy(), out_monai.detach().numpy(), **EXACT)
    weights = torch.randn(out_monai.shape, generator=torch.Generator().manual_seed(3))  # a loss using every logit
    (out_monai * weights).sum().backward()
    (out_twin * weights).sum().backward()
    assert x_monai.grad is not None
    assert x_twin.grad is not None
    assert_allclose(x_twin.grad.numpy(), x_monai.grad.numpy(), **EXACT)
    twin_parameters = dict(twin.named_parameters())
    for name, parameter in monai_net.named_parameters():
        assert parameter.grad is not None, name
        assert_allclose(twin_parameters[name].grad.numpy(), parameter.grad.numpy(), err_msg=name, **EXACT)


@pytest.mark.parametrize(
    ("dims", "features", "dropout", "bias"),
    [
        (2, DEFAULT_FEATURES, 0.0, True),
        (2, REDUCED, 0.1, True),
        (2, SMALL, 0.0, False),
        (3, SMALL, 0.0, True),
        (3, DEFAULT_FEATURES, 0.2, True),
        (3, REDUCED, 0.0, False),
    ],
)
def test_same_module_tree_and_keys(dims, features, dropout, bias):
    kwargs = {"in_channels": 1, "out_channels": 3, "features": features, "dropout": dropout, "bias": bias}
    monai_net = MonaiBasicUNet(spatial_dims=dims, **kwargs)
    twin = BasicUNet(dims, **kwargs)
    assert list(twin.state_dict()) == list(monai_net.state_dict())
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in monai_net.state_dict().items()}
    # The printed tree lists every layer with its settings (kernel, stride, padding, eps, affine,
    # slope, dropout).
    assert repr(twin) == repr(monai_net)


def test_unet_is_the_twin():
    net = UNet(2, 1, 5, REDUCED)
    assert isinstance(net, BasicUNet)
    assert repr(net).replace("UNet(", "BasicUNet(", 1) == repr(BasicUNet(2, 1, 5, REDUCED))


def test_starter_model_same_logits(shared_data: Path):
    net, card = load_model(STARTER, kind="segmentation")
    monai_net = MonaiBasicUNet(**card.arguments)
    monai_net.load_state_dict(load_file(str(STARTER / WEIGHTS)), strict=True)
    volume = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz")
    low, high = card.window.bounds(volume.array)
    image = torch.from_numpy(volume.array[:, :, volume.array.shape[2] // 2].astype("float32"))  # X x Y, mid slice
    image = ((image - low) / (high - low)).clamp(0.0, 1.0)[None, None]  # 1 x 1 x X x Y
    size = [round(n * s / t) for n, s, t in zip(image.shape[2:], volume.spacing[:2], card.spacing[:2], strict=True)]
    image = nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False)  # model spacing
    with torch.no_grad():
        expected = monai_net.eval()(image)
        logits = net.eval()(image)
    assert_allclose(logits.numpy(), expected.numpy(), **EXACT)
    assert len(logits.argmax(dim=1).unique()) > 1  # the slice shows organs, not only background


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"spatial_dims": 4}, "spatial_dims"),
        ({"features": (8,) * 5}, "6 feature"),
    ],
)
def test_argument_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BasicUNet(**kwargs)
