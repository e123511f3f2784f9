"""The LRC local term: super-pixel regions of both views contrasted pixel by pixel.

Yan et al., "Localized Region Contrast for Enhancing Self-Supervised Learning in Medical Image
Segmentation", MICCAI 2023 (arXiv 2304.03406): ``regions_per_image`` regions present in both views
are sampled with ``pixels_per_region`` pixels each (:func:`lrc.losses.sample_regions`), their decoder
features go through the local head, and :class:`lrc.losses.LocalRegionContrastLoss` contrasts them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lrc.losses import LocalRegionContrastLoss, sample_regions
from lrc.train.objectives.base import Batch, Need, Objective

if TYPE_CHECKING:
    from lrc.nets.unet import ContrastiveUNet
    from lrc.train.pretrain_config import PretrainConfig


class LocalContrastObjective(Objective):
    """``lambda_local`` times the local region contrast loss; also reports the mean number of ``regions`` sampled."""

    name = "lrc"
    term = "local"
    needs = frozenset({Need.DENSE})

    def __init__(self, config: PretrainConfig, online: ContrastiveUNet) -> None:
        super().__init__(config, online)
        self.weight = config.lambda_local
        self.contrast = LocalRegionContrastLoss(
            config.temperature_local, config.local_negatives, config.negative_margin
        )

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The local loss of the sampled regions; 0 (still on the graph) when no image has a region in both views."""
        config, views, dense = self.config, batch.views, batch.require_dense()
        sample = sample_regions(
            views.map_1, views.map_2, config.regions_per_image, config.pixels_per_region, batch.generator
        )
        size = batch.size
        value = self.contrast.from_views(
            dense[:size], dense[size:], sample, self.online.project_local, (views.first, views.second)
        )
        return value, {"regions": float(sample.valid.float().sum(dim=1).mean())}
