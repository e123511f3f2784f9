"""A penalty against dimensional collapse: the mean squared correlation between decoder channels.

:func:`lrc.losses.channel_correlation` on every pixel of both views' last decoder features (the
features fine-tuning inherits), weighted by ``decorrelation_weight``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lrc.losses import channel_correlation
from lrc.train.objectives.base import Batch, Need, Objective

if TYPE_CHECKING:
    from lrc.nets.unet import ContrastiveUNet
    from lrc.train.pretrain_config import PretrainConfig


class DecorrelationObjective(Objective):
    """``decorrelation_weight`` times the channel correlation of the dense features (0 to 1)."""

    name = "decorrelation"
    term = "correlation"
    needs = frozenset({Need.DENSE})

    def __init__(self, config: PretrainConfig, online: ContrastiveUNet) -> None:
        super().__init__(config, online)
        self.weight = config.decorrelation_weight

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared off-diagonal correlation over all pixels of both views."""
        dense = batch.require_dense()  # 2B x C x S x S[ x D]
        return channel_correlation(dense.movedim(1, -1).reshape(-1, dense.shape[1])), {}
