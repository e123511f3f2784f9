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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lrc.intensity import IntensityWindow
from lrc.io.volume import Volume
from lrc.losses.local_contrast import NEGATIVES
from lrc.models.card import ModelCard
from lrc.models.store import check_model_target, save_model
from lrc.nets.stages import DEFAULT_FEATURES
from lrc.superpixels import SuperpixelCache, SuperpixelParams
from lrc.train.blocks import BlockSampler, build_region_volumes
from lrc.train.limits import check_at_least, check_positive, check_seed
from lrc.train.pretrainer import Pretrainer
from lrc.train.slices import Preparing, SliceSet, build_slices, volume_sha256
from lrc.views import ViewConfig

log = logging.getLogger(__name__)
METHODS = ("moco", "lrc", "moco+lrc", "supervised+lrc")
Progress = Callable[[int, dict[str, float]], None]


@dataclass
class PretrainConfig:
    """Pre-training settings (defaults follow DESIGN.md's LRC specification).

    Args:
        method: ``moco``, ``lrc``, ``moco+lrc`` or ``supervised+lrc``.
        steps: optimisation steps.
        batch_size: slices per step (each gives two views).
        lr: AdamW learning rate; weight_decay: AdamW weight decay.
        spacing: in-plane model spacing, mm. canvas: slice canvas side, pixels. view_size: side of each view.
        spatial_dims: 2 (slices, the default) or 3 (blocks of ``canvas x canvas x depth`` at
            ``spacing x spacing x spacing_z`` mm, views of ``view_size x view_size x view_depth``;
            super-pixels stay per slice, see :mod:`lrc.train.blocks`). ``supervised+lrc`` is 2D only.
        features: U-Net feature sizes. embedding_dim: projection size of both heads.
        queue_size, momentum, temperature_global: MoCo v2 settings.
        temperature_local, lambda_local, regions_per_image (K), pixels_per_region (M): LRC settings.
        local_negatives: the local loss's negatives: ``batch`` (the specification) or ``image``
            (only the other regions of the same image; :mod:`lrc.losses.local_contrast`).
        negative_margin: regions whose mean intensities (windowed, 0-1) differ by less than this
            are no negatives of each other in the local loss (0: off, the specification).
        decorrelation_weight: weight of the channel-correlation penalty on the last decoder
            features of both views (0: off, the specification).
        restore_weight: weight of a restoration loss (0: off, the specification): a random
            ``restore_mask`` share of each view's 8-pixel cells is hidden (set to the view's
            mean) before the network sees it, and a 1x1 head on the last decoder features must
            give back the view before its intensity changes and the hiding (mean squared error).
            The in-painting and denoising of Models Genesis, as a term that keeps the features
            describing the image while the contrastive terms narrow them.
        views: augmentation ranges. superpixels: Felzenszwalb settings.
        seed: seeds numpy and torch; recorded in the card.
    """

    method: str = "moco+lrc"
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    spacing: float = 1.5
    canvas: int = 256
    view_size: int = 192
    spatial_dims: int = 2
    spacing_z: float = 3.0
    depth: int = 48
    view_depth: int = 32
    features: tuple[int, ...] = DEFAULT_FEATURES
    embedding_dim: int = 128
    queue_size: int = 4096
    momentum: float = 0.999
    temperature_global: float = 0.2
    temperature_local: float = 0.1
    lambda_local: float = 1.0
    regions_per_image: int = 16
    pixels_per_region: int = 8
    local_negatives: str = "batch"
    negative_margin: float = 0.0
    decorrelation_weight: float = 0.0
    restore_weight: float = 0.0
    restore_mask: float = 0.25
    views: ViewConfig = field(default_factory=ViewConfig)
    superpixels: SuperpixelParams = field(default_factory=SuperpixelParams)
    seed: int = 0

    def __post_init__(self) -> None:
        check_at_least(1, steps=self.steps)
        check_at_least(2, batch_size=self.batch_size)
        check_at_least(16, canvas=self.canvas, view_size=self.view_size)
        check_positive(spacing=self.spacing, spacing_z=self.spacing_z, lr=self.lr)
        check_seed(self.seed)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.view_size % 16 or self.canvas % 16:
            raise ValueError(f"canvas and view_size must be multiples of 16, got {self.canvas} and {self.view_size}")
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.spatial_dims == 3:
            check_at_least(1, depth=self.depth)
            check_at_least(16, view_depth=self.view_depth)
        if self.spatial_dims == 3 and self.view_depth % 16:
            raise ValueError(f"view_depth must be a multiple of 16, got {self.view_depth}")
        if self.spatial_dims == 3 and self.method == "supervised+lrc":
            raise ValueError("supervised+lrc pre-training is 2D only")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.local_negatives not in NEGATIVES:
            raise ValueError(f"local_negatives must be one of {NEGATIVES}, got {self.local_negatives!r}")
        if self.restore_weight < 0 or not 0 <= self.restore_mask < 1:
            weight, mask = self.restore_weight, self.restore_mask
            raise ValueError(f"need restore_weight >= 0 and restore_mask in [0, 1), got {weight} and {mask}")
        if self.restore_weight > 0 and self.method == "supervised+lrc":
            raise ValueError("restoration is not combined with supervised+lrc pre-training")
        if self.negative_margin < 0:
            raise ValueError(f"negative_margin must be >= 0, got {self.negative_margin}")
        if self.decorrelation_weight < 0:
            raise ValueError(f"decorrelation_weight must be >= 0, got {self.decorrelation_weight}")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (recorded in the card)."""
        data = asdict(self)
        data["features"] = list(self.features)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PretrainConfig:
        """The configuration :meth:`to_json` recorded (a card's ``training["config"]``)."""
        views: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["views"].items()}
        settings: dict[str, Any] = dict(data) | {
            "features": tuple(data["features"]),
            "views": ViewConfig(**views),
            "superpixels": SuperpixelParams(**data["superpixels"]),
        }
        return cls(**settings)


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
