"""The supervised term of ``supervised+lrc`` pre-training: Dice + cross-entropy on labelled slices.

The backbone segments the first view; its labels came through the same geometry as the image
(:func:`lrc.train.objectives.views.draw_views`). MONAI's ``DiceCELoss`` with softmax, as fine-tuning uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lrc.train.objectives.base import Batch, Need, Objective

if TYPE_CHECKING:
    from lrc.nets.unet import ContrastiveUNet
    from lrc.train.pretrain_config import PretrainConfig


class SupervisedObjective(Objective):
    """Dice + cross-entropy of the backbone's segmentation of the first view (weight 1)."""

    name = "supervised"
    term = "supervised"
    needs = frozenset({Need.LABELS})

    def __init__(self, config: PretrainConfig, online: ContrastiveUNet) -> None:
        super().__init__(config, online)
        from monai.losses import DiceCELoss  # here: MONAI is slow to import and only this term needs it

        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Dice + cross-entropy against the first view's classes."""
        if batch.views.target is None:
            raise RuntimeError("the supervised objective needs labels (Need.LABELS) and the batch has none")
        logits = self.online.backbone(batch.views.first)  # B x classes x S x S
        return self.dice_ce(logits.float(), batch.views.target), {}
