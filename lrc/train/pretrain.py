"""Self-supervised pre-training of the segmentation network: MoCo v2, LRC, or both.

Methods (``PretrainConfig.method``):

* ``moco``: global InfoNCE between the two views' pooled bottleneck embeddings, keys from a
  momentum encoder, negatives from a queue (symmetrised: each view is query once);
* ``lrc``: the local region contrast loss only, on the dense embeddings of both views;
* ``moco+lrc``: ``L = L_global + lambda * L_local`` (the LRC paper's objective);
* ``supervised+lrc``: Dice + cross-entropy on labelled slices plus ``lambda * L_local``.

Any method may add ``decorrelation_weight`` times the mean squared correlation between the channels
of the last decoder features (:func:`lrc.losses.channel_correlation`), against dimensional collapse.

Each term is an objective of :mod:`lrc.train.objectives`, summed by :class:`lrc.train.pretrainer.Pretrainer`.
Only the backbone (the U-Net) is saved; the projection heads are training scaffolding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from lrc.intensity import IntensityWindow
from lrc.io.volume import Volume
from lrc.model_dirs.card import ModelCard
from lrc.model_dirs.store import check_model_target, save_model
from lrc.superpixels import SuperpixelCache
from lrc.train.blocks import BlockSampler, build_region_volumes
from lrc.train.pretrain_config import PretrainConfig
from lrc.train.pretrainer import Pretrainer
from lrc.train.slices import Preparing, SliceSet, build_slices, volume_sha256

log = logging.getLogger(__name__)
Progress = Callable[[int, dict[str, float]], None]


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
