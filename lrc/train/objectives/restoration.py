"""Restoration: give back each view before its intensity changes and hidden cells.

The in-painting and denoising of Models Genesis (Zhou et al., MedIA 2021) as a term beside the
contrastive ones: a ``restore_mask`` share of each view's 8-pixel cells is hidden before the network
sees it (:func:`lrc.views.mask_cells`), and the network's 1x1 image head on the last decoder features
must give back the clean view (mean squared error), weighted by ``restore_weight``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lrc.train.objectives.base import Batch, Need, Objective

if TYPE_CHECKING:
    from lrc.nets.unet import ContrastiveUNet
    from lrc.train.pretrain_config import PretrainConfig


class RestorationObjective(Objective):
    """``restore_weight`` times the mean squared error of the restored views against the clean ones."""

    name = "restoration"
    term = "restore"
    needs = frozenset({Need.DENSE, Need.CLEAN, Need.IMAGE_HEAD})

    def __init__(self, config: PretrainConfig, online: ContrastiveUNet) -> None:
        super().__init__(config, online)
        if online.restore_head is None:
            raise ValueError("restoration needs a network with an image head (ContrastiveUNet(restore=True))")
        self.head = online.restore_head
        self.weight = config.restore_weight

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared error over both views."""
        if batch.views.clean is None:
            raise RuntimeError("restoration needs the clean views (Need.CLEAN) and the batch has none")
        restored = self.head(batch.require_dense()).float()  # 2B x 1 x S x S[ x D]
        return torch.nn.functional.mse_loss(restored, batch.views.clean), {}
