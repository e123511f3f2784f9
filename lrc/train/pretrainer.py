"""One pre-training run's networks, optimiser and step: the configured objectives summed on shared views.

The views of a batch are drawn once in the form the objectives need, the online network runs once
on both views, and each objective (:mod:`lrc.train.objectives`) adds its weighted term.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from lrc.device import autocast, resolve_device
from lrc.nets.unet import ContrastiveUNet, UNet
from lrc.runtime import tune_cpu_allocator
from lrc.train.objectives import Batch, Need, build, configured, draw_views, needs_of
from lrc.train.objectives.views import check_needs

if TYPE_CHECKING:
    from lrc.train.pretrain_config import PretrainConfig


class Pretrainer:
    """One pre-training run: networks, objectives, optimiser and the step function.

    Args:
        config: settings; its method and optional weights name the objectives
            (:func:`lrc.train.objectives.configured`).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        classes: output classes for ``supervised+lrc`` (background included).
        backbone: an existing network to train (on ``device``; torch is then not re-seeded), as
            fine-tuning does when it keeps this objective on (:mod:`lrc.train.contrast_term`);
            ``None``: a new one from ``config`` and ``classes``.

    Raises:
        UnknownObjective: the method names an objective that is not registered.
        ValueError: the objectives need views no drawing gives together.
    """

    def __init__(
        self,
        config: PretrainConfig,
        device: str | torch.device = "auto",
        classes: int = 2,
        backbone: UNet | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        self.optimises = backbone is None  # a given backbone is optimised by its owner: objective() only
        if backbone is None:
            torch.manual_seed(config.seed)
            backbone = UNet(config.spatial_dims, in_channels=1, out_channels=classes, features=config.features)
        names = configured(config)
        self.needs = needs_of(names)
        check_needs(self.needs)
        image_head = Need.IMAGE_HEAD in self.needs
        self.online = ContrastiveUNet(backbone, config.embedding_dim, restore=image_head).to(self.device)
        self.objectives = build(names, config, self.online)  # after the heads: the seeded draws keep their order
        if self.optimises:
            self.optimizer = torch.optim.AdamW(self.online.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            warmup = max(1, config.steps // 20)
            self.schedule = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda step: warmup_cosine(step, warmup, config.steps)
            )
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)

    def step(self, images: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, float]:
        """One optimisation step on ``B1CC[D]`` slices or blocks, their ``BCC[D]`` super-pixels (and labels)."""
        if not self.optimises:
            raise RuntimeError("this Pretrainer computes the objective of a network optimised elsewhere")
        loss, metrics = self.objective(images, maps, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        metrics["loss"] = float(loss.detach())
        return metrics

    def objective(
        self, images: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one batch (views drawn, objectives' state advanced) and its terms, without a step.

        ``labels`` are used when an objective needs them (``supervised+lrc``) and ignored otherwise.
        """
        self.online.train()
        views = draw_views(images, maps, labels, self.needs, self.config, self.generator)
        both = torch.cat([views.first, views.second])  # 2B x 1 x S x S[ x D]
        metrics: dict[str, float] = {}
        with autocast(self.device):
            query, dense = self.online(both, local=Need.DENSE in self.needs)  # 2B x E, 2B x C x S x S[ x D]
            batch = Batch(views, both, query, dense, self.generator)
            loss = torch.zeros((), device=self.device)
            for objective in self.objectives:
                value, extra = objective.loss(batch)
                loss = loss + objective.weight * value
                metrics[objective.term] = float(value.detach())
                metrics |= extra
        return loss, metrics


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
