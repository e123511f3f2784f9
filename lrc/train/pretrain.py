"""Self-supervised pre-training of the segmentation network: MoCo v2, LRC, or both.

Methods (``PretrainConfig.method``):

* ``moco``: global InfoNCE between the two views' pooled bottleneck embeddings, keys from a
  momentum encoder, negatives from a queue (symmetrised: each view is query once);
* ``lrc``: the local region contrast loss only, on the dense embeddings of both views;
* ``moco+lrc``: ``L = L_global + lambda * L_local`` (the LRC paper's objective);
* ``supervised+lrc``: Dice + cross-entropy on labelled slices plus ``lambda * L_local``.

Any method may add ``decorrelation_weight`` times the mean squared correlation between the channels
of the last decoder features (:func:`lrc.losses.channel_correlation`), against dimensional collapse.

Only the backbone (the U-Net) is saved; the projection heads are training scaffolding.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from lrc.device import autocast, resolve_device
from lrc.intensity import IntensityWindow
from lrc.io.volume import Volume
from lrc.losses import LocalRegionContrastLoss, MoCoQueue, channel_correlation, info_nce, sample_regions
from lrc.losses.moco import momentum_update
from lrc.models.card import ModelCard
from lrc.models.store import check_model_target, save_model
from lrc.nets.unet import ContrastiveUNet, UNet
from lrc.runtime import tune_cpu_allocator
from lrc.superpixels import SuperpixelCache
from lrc.train.blocks import BlockSampler, build_region_volumes
from lrc.train.pretrain_config import PretrainConfig
from lrc.train.slices import Preparing, SliceSet, build_slices, volume_sha256
from lrc.views import geometric_views, intensity, make_views, mask_cells

log = logging.getLogger(__name__)
Progress = Callable[[int, dict[str, float]], None]


class Pretrainer:
    """One pre-training run: networks, losses, optimiser and the step function.

    Args:
        config: settings.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        classes: output classes for ``supervised+lrc`` (background included).
        backbone: an existing network to train (on ``device``; torch is then not re-seeded), as
            fine-tuning does when it keeps this objective on (:mod:`lrc.train.contrast_term`);
            ``None``: a new one from ``config`` and ``classes``.
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
        self.restores = config.restore_weight > 0
        self.online = ContrastiveUNet(backbone, config.embedding_dim, restore=self.restores).to(self.device)
        self.uses_moco = config.method in ("moco", "moco+lrc")
        self.uses_local = config.method != "moco"
        self.uses_dense = self.uses_local or config.decorrelation_weight > 0 or self.restores
        self.key: ContrastiveUNet | None = None
        if self.uses_moco:
            self.key = copy.deepcopy(self.online).requires_grad_(False)
            self.queue = MoCoQueue(config.embedding_dim, config.queue_size).to(self.device)
        self.local_loss = LocalRegionContrastLoss(
            config.temperature_local, config.local_negatives, config.negative_margin
        )
        if self.optimises:
            self.optimizer = torch.optim.AdamW(self.online.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            warmup = max(1, config.steps // 20)
            self.schedule = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda step: warmup_cosine(step, warmup, config.steps)
            )
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        if config.method == "supervised+lrc":
            from monai.losses import DiceCELoss

            self.supervised = DiceCELoss(to_onehot_y=True, softmax=True)

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
        """The loss of one batch (views drawn, key encoder and queue advanced) and its terms, without a step."""
        config = self.config
        size = config.view_size if config.spatial_dims == 2 else (config.view_size, config.view_size, config.view_depth)
        self.online.train()
        if labels is not None:
            # Labels travel with the image through the geometry: stack them as a second map.
            view_1, view_2, map_1, map_2 = make_views(images, maps * 256 + labels, size, config.views, self.generator)
            target_1, map_1, map_2 = (map_1 % 256)[:, None], map_1 // 256, map_2 // 256
        elif self.restores:
            clean_1, clean_2, map_1, map_2 = geometric_views(images, maps, size, config.views, self.generator)
            hide = config.restore_mask
            view_1, view_2 = (
                mask_cells(intensity(clean, config.views, self.generator), hide, generator=self.generator)
                for clean in (clean_1, clean_2)
            )
        else:
            view_1, view_2, map_1, map_2 = make_views(images, maps, size, config.views, self.generator)
        batch = images.shape[0]
        both = torch.cat([view_1, view_2])  # 2B x 1 x S x S[ x D]
        metrics: dict[str, float] = {}
        with autocast(self.device):
            query, dense = self.online(both, local=self.uses_dense)  # 2B x E, 2B x C x S x S[ x D]
            loss = torch.zeros((), device=self.device)
            if self.uses_moco:
                assert self.key is not None
                with torch.no_grad():
                    momentum_update(self.online, self.key, config.momentum)
                    keys, _ = self.key(both, local=False)  # 2B x D
                negatives = self.queue.keys.clone().detach()
                q_1, q_2 = query[:batch], query[batch:]
                k_1, k_2 = keys[:batch], keys[batch:]
                global_loss = 0.5 * (
                    info_nce(q_1, k_2, negatives, config.temperature_global)
                    + info_nce(q_2, k_1, negatives, config.temperature_global)
                )
                self.queue.push(k_1)
                loss = loss + global_loss
                metrics["global"] = float(global_loss.detach())
            if self.uses_local:
                assert dense is not None
                sample = sample_regions(
                    map_1, map_2, config.regions_per_image, config.pixels_per_region, self.generator
                )
                local = self.local_loss.from_views(
                    dense[:batch], dense[batch:], sample, self.online.project_local, (view_1, view_2)
                )
                loss = loss + config.lambda_local * local
                metrics["local"] = float(local.detach())
                metrics["regions"] = float(sample.valid.float().sum(dim=1).mean())
            if config.decorrelation_weight > 0:
                assert dense is not None
                correlation = channel_correlation(dense.movedim(1, -1).reshape(-1, dense.shape[1]))
                loss = loss + config.decorrelation_weight * correlation
                metrics["correlation"] = float(correlation.detach())
            if self.restores:
                assert dense is not None
                assert self.online.restore_head is not None
                restored = self.online.restore_head(dense).float()  # 2B x 1 x S x S[ x D]
                restore = torch.nn.functional.mse_loss(restored, torch.cat([clean_1, clean_2]))
                loss = loss + config.restore_weight * restore
                metrics["restore"] = float(restore.detach())
            if labels is not None:
                logits = self.online.backbone(view_1)
                supervised = self.supervised(logits.float(), target_1)
                loss = loss + supervised
                metrics["supervised"] = float(supervised.detach())
        return loss, metrics


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def pretrain(
    images: list[Volume],
    out: str | Path,
    config: PretrainConfig | None = None,
    *,
    device: str | torch.device = "auto",
    cache_dir: str | Path | None = None,
    labels: list[Volume] | None = None,
    class_of: dict[int, int] | None = None,
    progress: Progress | None = None,
    preparing: Preparing | None = None,
) -> Path:
    """Pre-train on unlabeled volumes and write a ``pretrained`` model directory.

    Args:
        images: unlabeled volumes (CT or MR; the window follows the first volume's modality).
        out: model directory to write.
        config: settings.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        cache_dir: super-pixel cache (default: ``out/../.superpixel-cache``).
        labels, class_of: label maps and value -> class mapping for ``supervised+lrc``.
        progress: called as ``progress(step, metrics)`` after every step.
        preparing: called while the slices (or volumes) and their super-pixels are built, before the first
            step, with the share done (:data:`lrc.train.slices.Preparing`; it may raise to stop).

    Returns:
        The model directory.

    Raises:
        OutputError: ``out`` cannot take a model (checked before any work).
    """
    config = config or PretrainConfig()
    if config.method == "supervised+lrc" and not (labels and class_of):
        raise ValueError("supervised+lrc needs label maps and their value -> class mapping")
    check_model_target(out)
    out = Path(out)
    window = IntensityWindow.for_modality(images[0].modality)
    cache = SuperpixelCache(cache_dir or out.parent / ".superpixel-cache", config.superpixels)
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    sampler: BatchSampler
    spacing: tuple[float, float, float | None]
    if config.spatial_dims == 2:
        slices = build_slices(
            images,
            window,
            config.spacing,
            config.canvas,
            labels=labels,
            class_of=class_of,
            cache=cache,
            preparing=preparing,
        )
        sampler, spacing = SliceSampler(slices, config.batch_size, rng), (config.spacing, config.spacing, None)
    else:
        grid = (config.spacing, config.spacing_z)
        volumes = build_region_volumes(images, window, grid, config.canvas, cache, preparing=preparing)
        sampler = BlockSampler(volumes, config.depth, config.batch_size, rng)
        spacing = (config.spacing, config.spacing, config.spacing_z)
    log.info(
        "pre-training on %d %s (super-pixels: %d cached, %d computed in %.1f s)",
        len(sampler),
        "slices" if config.spatial_dims == 2 else "body slices to centre blocks on",
        cache.hits,
        cache.misses,
        time.perf_counter() - started,
    )
    trainer = Pretrainer(config, device, classes=1 + max(class_of.values()) if labels and class_of else 2)
    history = _run(trainer, sampler, progress)
    card = ModelCard(
        kind="pretrained",
        architecture="",
        arguments={},
        window=window,
        spacing=spacing,
        canvas=config.canvas,
        training={
            "method": config.method,
            "config": config.to_json(),
            "steps": config.steps,
            "data": [volume_sha256(v) for v in images],
            "slices": len(sampler),
            "seeds": {"torch": config.seed, "numpy": config.seed},
            "final": history[-1],
            "seconds": round(time.perf_counter() - started, 1),
            "device": str(trainer.device),
        },
    )
    return save_model(out, trainer.online.backbone, card)


class BatchSampler(Protocol):
    """Pre-training batches: images ``B1...`` (float), super-pixels ``B...`` (long), labels ``B...`` or ``None``."""

    def __len__(self) -> int: ...

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]: ...


class SliceSampler:
    """Random slices with their super-pixels (and labels, for ``supervised+lrc``)."""

    def __init__(self, slices: SliceSet, batch_size: int, rng: np.random.Generator) -> None:
        if slices.superpixels is None:
            raise ValueError("pre-training slices need super-pixels")
        self.images = torch.from_numpy(slices.images)  # N x C x C float16
        self.maps = torch.from_numpy(slices.superpixels)  # N x C x C
        self.labels = torch.from_numpy(slices.labels.astype(np.int64)) if slices.labels is not None else None
        self.batch_size = batch_size
        self.rng = rng

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Images ``B1CC``, super-pixels ``BCC`` and labels ``BCC`` (or ``None``)."""
        index = torch.from_numpy(self.rng.integers(0, len(self), self.batch_size))
        images = self.images[index][:, None].to(device, non_blocking=True).float()  # B x 1 x C x C
        maps = self.maps[index].to(device, non_blocking=True).long()  # B x C x C
        return images, maps, None if self.labels is None else self.labels[index].to(device)


def _run(trainer: Pretrainer, sampler: BatchSampler, progress: Progress | None) -> list[dict[str, float]]:
    history = []
    for step in range(1, trainer.config.steps + 1):
        metrics = trainer.step(*sampler.batch(trainer.device))
        history.append(metrics)
        if progress:
            progress(step, metrics)
    return history
