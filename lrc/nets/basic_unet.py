"""MONAI's ``BasicUNet`` in plain PyTorch: the same modules, parameter names and arithmetic.

Falk et al., "U-Net: deep learning for cell counting, detection, and morphometry", Nature Methods
16, 67-70 (2019); the layout of ``monai.networks.nets.BasicUNet`` (MONAI 1.x) with the settings
this project uses: 3x3[x3] convolutions with bias, each followed by instance norm (affine), dropout
and leaky ReLU (slope 0.1) in MONAI's "NDA" order, 2x max pooling down, 2x2[x2] transposed
convolutions up.

Why a copy: ``import monai`` loads the whole library (its transforms, SciPy's signal and stats,
even matplotlib), ~3 s of start-up for every ``lrc segment`` and inference worker that only need
the network. The module tree, the ``state_dict`` keys and the order of operations are MONAI's, so
weights saved from either class load into the other with ``strict=True`` and give the same
outputs; even the printed module tree is the same (hence the class names ``Convolution``, ``ADN``
and ``UpSample``, which name MONAI's building blocks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

CONV: dict[int, type[nn.Conv2d | nn.Conv3d]] = {2: nn.Conv2d, 3: nn.Conv3d}
DECONV: dict[int, type[nn.ConvTranspose2d | nn.ConvTranspose3d]] = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
NORM: dict[int, type[nn.InstanceNorm2d | nn.InstanceNorm3d]] = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
POOL: dict[int, type[nn.MaxPool2d | nn.MaxPool3d]] = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
NEGATIVE_SLOPE = 0.1  # MONAI BasicUNet's default activation: LeakyReLU(0.1)


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in CONV:
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


class ADN(nn.Sequential):
    """Instance norm (``N``), dropout (``D``), leaky ReLU (``A``), in that order; ``BCHW[D]`` -> same.

    Args:
        spatial_dims: 2 or 3.
        channels: ``C``.
        dropout: dropout probability (element-wise, as MONAI's default ``dropout_dim=1``).
    """

    def __init__(self, spatial_dims: int, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        self.add_module("N", NORM[spatial_dims](channels, affine=True))
        # MONAI adds the dropout layer even for p=0 (it only leaves it out for dropout=None): kept for
        # the identical module tree, and it is the identity then.
        self.add_module("D", nn.Dropout(p=dropout))
        self.add_module("A", nn.LeakyReLU(negative_slope=NEGATIVE_SLOPE, inplace=True))


class Convolution(nn.Sequential):
    """A 3x3[x3] convolution (padding 1, bias) followed by :class:`ADN`; ``BC_inHW[D]`` -> ``BC_outHW[D]``."""

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, dropout: float = 0.0, bias: bool = True
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        self.add_module("conv", CONV[spatial_dims](in_channels, out_channels, kernel_size=3, padding=1, bias=bias))
        self.add_module("adn", ADN(spatial_dims, out_channels, dropout))


class TwoConv(nn.Sequential):
    """Two :class:`Convolution` blocks (``conv_0``, ``conv_1``); ``BC_inHW[D]`` -> ``BC_outHW[D]``.

    Args:
        spatial_dims: 2 or 3.
        in_chns: input channels.
        out_chns: output channels (of both convolutions).
        bias: a bias term in the convolutions.
        dropout: dropout probability.
    """

    def __init__(self, spatial_dims: int, in_chns: int, out_chns: int, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.add_module("conv_0", Convolution(spatial_dims, in_chns, out_chns, dropout, bias))
        self.add_module("conv_1", Convolution(spatial_dims, out_chns, out_chns, dropout, bias))


class Down(nn.Sequential):
    """2x max pooling then :class:`TwoConv`; ``BC_inHW[D]`` -> ``BC_out(H/2)(W/2)[(D/2)]`` (rounded down)."""

    def __init__(self, spatial_dims: int, in_chns: int, out_chns: int, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        self.add_module("max_pooling", POOL[spatial_dims](kernel_size=2))
        self.add_module("convs", TwoConv(spatial_dims, in_chns, out_chns, bias, dropout))


class UpSample(nn.Sequential):
    """2x upsampling by a 2x2[x2] transposed convolution (``deconv``); ``BC_inHW[D]`` -> ``BC_out(2H)(2W)[(2D)]``."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        self.add_module("deconv", DECONV[spatial_dims](in_channels, out_channels, kernel_size=2, stride=2, bias=bias))


class UpCat(nn.Module):
    """Upsampling, concatenation with the encoder features, :class:`TwoConv`.

    Args:
        spatial_dims: 2 or 3.
        in_chns: channels of the features to upsample.
        cat_chns: channels of the encoder features.
        out_chns: output channels.
        bias: a bias term in the convolutions.
        dropout: dropout probability.
        halves: upsample to ``in_chns // 2`` channels (else keep ``in_chns``).
        is_pad: pad the upsampled features to the encoder features' size where they differ.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_chns: int,
        cat_chns: int,
        out_chns: int,
        bias: bool = True,
        dropout: float = 0.0,
        halves: bool = True,
        is_pad: bool = True,
    ) -> None:
        super().__init__()
        up_chns = in_chns // 2 if halves else in_chns
        # MONAI's UpCat leaves UpSample's own bias=True whatever ``bias`` says: the same here.
        self.upsample = UpSample(spatial_dims, in_chns, up_chns)
        self.convs = TwoConv(spatial_dims, cat_chns + up_chns, out_chns, bias, dropout)
        self.is_pad = is_pad

    def forward(self, x: torch.Tensor, x_e: torch.Tensor | None) -> torch.Tensor:
        """``BC_inhw[d]`` features and ``BC_catHW[D]`` encoder features (or ``None``) -> ``BC_outHW[D]``."""
        x_0 = self.upsample(x)  # B x up_chns x 2h x 2w[ x 2d]
        if x_e is None:
            return self.convs(x_0)
        if self.is_pad:
            # Max pooling rounds odd sizes down, so the upsampled map can be one voxel short of the
            # encoder's; MONAI repeats the last row/column (at the high end) of each such dimension.
            # F.pad lists the last dimension first: (low, high) per dimension.
            pad = [0] * (2 * (x.dim() - 2))
            for i in range(x.dim() - 2):
                if x_e.shape[-i - 1] != x_0.shape[-i - 1]:
                    pad[2 * i + 1] = 1
            if any(pad):  # no copy when the sizes agree (sizes divisible by 16)
                x_0 = nn.functional.pad(x_0, pad, "replicate")
        return self.convs(torch.cat([x_e, x_0], dim=1))  # B x (cat_chns + up_chns) x H x W[ x D]


class BasicUNet(nn.Module):
    """A five-level U-Net: ``conv_0``, ``down_1``..``down_4``, ``upcat_4``..``upcat_1``, ``final_conv``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (logits).
        features: six feature sizes: the five encoder levels, then the last decoder level.
        bias: a bias term in the 3x3[x3] convolutions (the transposed and the final convolutions
            always have one, as in MONAI).
        dropout: dropout probability after each normalisation.

    Raises:
        ValueError: ``spatial_dims`` not 2 or 3, or not six feature sizes.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (32, 32, 64, 128, 256, 32),
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_dims(spatial_dims)
        if len(features) != 6:
            raise ValueError(f"BasicUNet takes 6 feature sizes, got {list(features)}")
        fea = tuple(int(f) for f in features)
        self.conv_0 = TwoConv(spatial_dims, in_channels, fea[0], bias, dropout)
        self.down_1 = Down(spatial_dims, fea[0], fea[1], bias, dropout)
        self.down_2 = Down(spatial_dims, fea[1], fea[2], bias, dropout)
        self.down_3 = Down(spatial_dims, fea[2], fea[3], bias, dropout)
        self.down_4 = Down(spatial_dims, fea[3], fea[4], bias, dropout)
        self.upcat_4 = UpCat(spatial_dims, fea[4], fea[3], fea[3], bias, dropout)
        self.upcat_3 = UpCat(spatial_dims, fea[3], fea[2], fea[2], bias, dropout)
        self.upcat_2 = UpCat(spatial_dims, fea[2], fea[1], fea[1], bias, dropout)
        # The last level keeps all fea[1] channels when upsampling (MONAI's halves=False).
        self.upcat_1 = UpCat(spatial_dims, fea[1], fea[0], fea[5], bias, dropout, halves=False)
        self.final_conv = CONV[spatial_dims](fea[5], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``BC_inHW[D]`` -> ``BC_outHW[D]`` logits; sizes divisible by 16 avoid padding in the decoder."""
        x0 = self.conv_0(x)  # B x f0 x H x W[ x D]
        x1 = self.down_1(x0)  # B x f1 x H/2 x W/2[ x D/2]
        x2 = self.down_2(x1)  # B x f2 x H/4 ...
        x3 = self.down_3(x2)  # B x f3 x H/8 ...
        x4 = self.down_4(x3)  # B x f4 x H/16 ... (bottleneck)
        u4 = self.upcat_4(x4, x3)  # B x f3 x H/8 ...
        u3 = self.upcat_3(u4, x2)  # B x f2 x H/4 ...
        u2 = self.upcat_2(u3, x1)  # B x f1 x H/2 ...
        u1 = self.upcat_1(u2, x0)  # B x f5 x H x W[ x D]
        return self.final_conv(u1)  # B x C_out x H x W[ x D]
