"""The self-supervised objective kept on during fine-tuning, on unlabeled slices.

Pre-training then fine-tuning lets fine-tuning overwrite what pre-training taught: on the synthetic
cohort and the real CT, pre-trained weights end level with scratch, and their faster start comes from
the 3x rate they are fine-tuned at (scratch at that rate starts as fast: ``bench/RESULTS.md``). With
``FinetuneConfig.contrast_weight > 0``, fine-tuning adds ``contrast_weight`` times a pre-training loss
(MoCo, LRC or MoCo+LRC, with its views and super-pixels) on a batch of unlabeled slices every
``contrast_every`` steps, through the network being fine-tuned: self-supervision as an auxiliary task of
the supervised one (S4L: Zhai et al., "Self-supervised semi-supervised learning", ICCV 2019). The
projection heads are new, the momentum key encoder starts as a copy of the network and its queue empty;
none of them is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrc.intensity import IntensityWindow
from lrc.io.volume import Volume
from lrc.nets.unet import UNet
from lrc.superpixels import SuperpixelCache
from lrc.train.pretrain import PretrainConfig, SliceSampler
from lrc.train.pretrainer import Pretrainer
from lrc.train.slices import build_slices, volume_sha256


@dataclass
class Unlabeled:
    """Unlabeled volumes for the contrast term of fine-tuning, and the term's settings.

    Args:
        images: the volumes (resampled to the fine-tuning grid).
        config: the pre-training settings of the term (method, batch, views, super-pixels, ...);
            ``None``: those recorded by the ``pretrained`` parent, or :class:`PretrainConfig`'s
            defaults on the fine-tuning grid when there is none.
        cache_dir: super-pixel cache (default: next to the model directory).
    """

    images: list[Volume]
    config: PretrainConfig | None = None
    cache_dir: Path | None = None


class ContrastTerm:
    """The pre-training loss of :class:`~lrc.train.pretrainer.Pretrainer` on ``net``, batch by batch.

    Args:
        net: the network being fine-tuned (shared, not copied; 2D).
        config: pre-training settings; its grid (spacing, canvas) must be the fine-tuning's.
        images: unlabeled volumes. window: their intensity window.
        cache: super-pixel cache (its parameters must be ``config.superpixels``).
        device: where ``net`` is.
        seed: seeds the slice sampling.
    """

    def __init__(
        self,
        net: UNet,
        config: PretrainConfig,
        images: list[Volume],
        window: IntensityWindow,
        cache: SuperpixelCache,
        device: torch.device,
        seed: int,
    ) -> None:
        if config.spatial_dims != 2 or net.arguments["spatial_dims"] != 2:
            raise ValueError("the contrast term of fine-tuning is 2D only")
        if config.method == "supervised+lrc":
            raise ValueError("the contrast term needs a self-supervised method (moco, lrc or moco+lrc)")
        if not images:
            raise ValueError("the contrast term needs unlabeled volumes")
        slices = build_slices(images, window, config.spacing, config.canvas, cache=cache)
        self.sampler = SliceSampler(slices, config.batch_size, np.random.default_rng(seed))
        self.trainer = Pretrainer(config, device, backbone=net)  # fine-tuning's optimiser takes the heads
        self.config = config
        self.data = [volume_sha256(image) for image in images]

    def heads(self) -> list[torch.nn.Parameter]:
        """The projection heads' parameters (the network's are the fine-tuning's own)."""
        return [p for name, p in self.trainer.online.named_parameters() if not name.startswith("backbone.")]

    def loss(self) -> tuple[torch.Tensor, dict[str, float]]:
        """The objective on a fresh batch of unlabeled slices, and its terms."""
        images, maps, _ = self.sampler.batch(self.trainer.device)
        return self.trainer.objective(images, maps)
