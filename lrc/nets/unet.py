"""The segmentation network (MONAI's ``BasicUNet`` layout) and access to its inner features.

``BasicUNet`` (2D or 3D; :mod:`lrc.nets.basic_unet`, a plain-PyTorch twin of MONAI's class with
the same weights and outputs, so that loading a network does not import MONAI) has an encoder of
five stages (``conv_0``, ``down_1``..``down_4``), a decoder of four up-and-concatenate stages
(``upcat_4``..``upcat_1``) and a 1x1 output convolution (``final_conv``). Pre-training needs the
bottleneck (output of ``down_4``) for the global head and the last decoder features (output of
``upcat_1``) for the local head; fine-tuning uses the whole network. Input sizes should be
divisible by 16 in each spatial dimension (otherwise max pooling rounds down and the decoder pads).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lrc.nets.basic_unet import BasicUNet
from lrc.nets.stages import DEFAULT_FEATURES

ARCHITECTURE = "monai.BasicUNet"  # names the weight layout (MONAI's), which the twin keeps


class UNet(BasicUNet):
    """BasicUNet (instance norm, leaky ReLU) that remembers its constructor arguments.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes, background included.
        features: six feature sizes (five encoder stages, last decoder stage).
        dropout: dropout probability.

    Raises:
        ValueError: unsupported dimensions or feature list.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        features: tuple[int, ...] | list[int] = DEFAULT_FEATURES,
        dropout: float = 0.0,
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(features) != 6:
            raise ValueError(f"BasicUNet takes 6 feature sizes, got {list(features)}")
        if out_channels < 2:
            raise ValueError(f"out_channels counts the background too: at least 2, got {out_channels}")
        super().__init__(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            features=tuple(features),
            dropout=dropout,
        )
        self.arguments: dict[str, Any] = {
            "spatial_dims": spatial_dims,
            "in_channels": in_channels,
            "out_channels": out_channels,
            "features": [int(f) for f in features],
            "dropout": float(dropout),
        }


def encode(net: UNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Encoder outputs, shallow to deep; the last one is the bottleneck. ``x``: ``BCHW[D]``."""
    x0 = net.conv_0(x)
    x1 = net.down_1(x0)
    x2 = net.down_2(x1)
    x3 = net.down_3(x2)
    x4 = net.down_4(x3)
    return [x0, x1, x2, x3, x4]


def decode(net: UNet, skips: list[torch.Tensor]) -> torch.Tensor:
    """Last decoder features (before ``final_conv``) from the encoder outputs."""
    x0, x1, x2, x3, x4 = skips
    u4 = net.upcat_4(x4, x3)
    u3 = net.upcat_3(u4, x2)
    u2 = net.upcat_2(u3, x1)
    return net.upcat_1(u2, x0)


class ContrastiveUNet(nn.Module):
    """A BasicUNet with the two LRC projection heads.

    * global head: global average pooling of the bottleneck, then an MLP (MoCo v2's 2-layer head);
    * local head: a 2-layer MLP on each pixel of the last decoder features, i.e. two 1x1
      convolutions. It is applied only to the pixels the local loss samples (see
      :meth:`project_local`): the same values as convolving the whole map, without computing
      128 channels at full resolution for the few hundred pixels per image that are used.

    Both give L2-normalised embeddings of size ``dim``. With ``restore``, a third head (a 1x1
    convolution to one channel) maps the last decoder features back to an image, for restoration
    pre-training. The heads are dropped for fine-tuning: only ``backbone`` is saved into the model
    directory.

    Args:
        backbone: the segmentation network.
        dim: embedding size of both heads.
        restore: add the image head.
    """

    def __init__(self, backbone: UNet, dim: int = 128, restore: bool = False) -> None:
        super().__init__()
        features = backbone.arguments["features"]
        self.backbone = backbone
        self.global_head = nn.Sequential(
            nn.Linear(features[4], features[4]), nn.ReLU(inplace=True), nn.Linear(features[4], dim)
        )
        self.local_head = nn.Sequential(
            nn.Linear(features[5], features[5]), nn.ReLU(inplace=True), nn.Linear(features[5], dim)
        )
        convolution = nn.Conv2d if backbone.arguments["spatial_dims"] == 2 else nn.Conv3d
        self.restore_head = convolution(features[5], 1, kernel_size=1) if restore else None

    def global_embedding(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """``BC...`` bottleneck -> ``BD`` unit vectors."""
        pooled = bottleneck.flatten(2).mean(dim=2)  # B x C
        return nn.functional.normalize(self.global_head(pooled), dim=1)  # B x D

    def project_local(self, features: torch.Tensor) -> torch.Tensor:
        """``NC`` decoder features of sampled pixels -> ``ND`` unit local embeddings."""
        return nn.functional.normalize(self.local_head(features), dim=1)

    def dense_embedding(self, features: torch.Tensor) -> torch.Tensor:
        """``BCHW[D]`` decoder features -> ``BDHW[D]`` unit local embeddings of every pixel."""
        moved = features.movedim(1, -1)  # B x H x W[ x D] x C
        return self.project_local(moved.reshape(-1, moved.shape[-1])).reshape(*moved.shape[:-1], -1).movedim(-1, 1)

    def forward(self, x: torch.Tensor, local: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Global ``BD`` unit embeddings and (when ``local``) the ``BCHW[D]`` last decoder features."""
        skips = encode(self.backbone, x)
        global_embedding = self.global_embedding(skips[-1])  # B x D
        if not local:
            return global_embedding, None
        return global_embedding, decode(self.backbone, skips)
