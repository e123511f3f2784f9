"""The MoCo v2 global term: each view's pooled embedding against the other view's momentum key.

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020; Chen et
al., "Improved Baselines with Momentum Contrastive Learning", arXiv 2003.04297. Symmetrised: each
view is the query once. The key encoder is a momentum copy of the online network (heads included)
and the negatives a queue of past keys (:mod:`lrc.losses.moco`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from lrc.losses import MoCoQueue, info_nce
from lrc.losses.moco import momentum_update
from lrc.train.objectives.base import Batch, Objective

if TYPE_CHECKING:
    from lrc.nets.unet import ContrastiveUNet
    from lrc.train.pretrain_config import PretrainConfig


class MoCoObjective(Objective):
    """InfoNCE of both views against a momentum key encoder and a queue (``momentum``, ``temperature_global``)."""

    name = "moco"
    term = "global"

    def __init__(self, config: PretrainConfig, online: ContrastiveUNet) -> None:
        super().__init__(config, online)
        device = next(online.parameters()).device
        self.key = copy.deepcopy(online).requires_grad_(False)
        self.queue = MoCoQueue(config.embedding_dim, config.queue_size).to(device)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The symmetrised InfoNCE; advances the key encoder first and pushes the first view's keys after."""
        size, temperature = batch.size, self.config.temperature_global
        with torch.no_grad():
            momentum_update(self.online, self.key, self.config.momentum)
            keys, _ = self.key(batch.both, local=False)  # 2B x E
        negatives = self.queue.keys.clone().detach()  # K x E
        q_1, q_2 = batch.query[:size], batch.query[size:]  # B x E each
        k_1, k_2 = keys[:size], keys[size:]  # B x E each
        value = 0.5 * (info_nce(q_1, k_2, negatives, temperature) + info_nce(q_2, k_1, negatives, temperature))
        self.queue.push(k_1)
        return value, {}
