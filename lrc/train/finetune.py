"""Fine-tuning a segmentation network on a few labelled volumes, from scratch or pre-trained weights.

Dice + cross-entropy (MONAI ``DiceCELoss``), AdamW with a cosine schedule, random patches
(:mod:`lrc.train.patches`) of axial slices (2D, the default) or of whole volumes (3D), half of
them centred on labelled voxels, with flips and mild intensity changes, and in 2D optionally
rotated and scaled (``augment_scale``, ``augment_rotate``). The pre-trained backbone
initialises encoder and decoder (``transfer="all"``) or the encoder only (``"encoder"``: the decoder
starts random). The 1x1 output layer has one channel per structure: from a segmentation model, the
channel of each structure it segments starts from its channel of that name, the rest start random.
Transferred layers may learn at another rate (``backbone_lr_factor``; from scratch it applies to the
same layers, so that a rate can be compared with and without pre-training) and may stay frozen for the first
``warmup_steps`` while the new layers fit them (linear probing, then fine-tuning), and may be
shrunk towards a fresh initialisation first (``shrink``, ``perturb``: Ash and Adams, "On
warm-starting neural network training", NeurIPS 2020). Named stages may start fresh (``reinit``):
the deepest ones are the most specific to the pre-training task, as the top layers are in
few-sample fine-tuning of language models (Zhang et al., "Revisiting few-sample BERT fine-tuning",
ICLR 2021). Or the transferred layers may be held near their pre-trained values (``anchor_weight``:
L2-SP as a decoupled weight decay).

Validation runs the real predictor on whole held-out volumes, on their own grids, as the model
will predict (whole slices or tiles: ``FinetuneConfig.tile``, recorded in the card), and reports
Dice per structure, matched to the reference labels by name; the best weights (mean Dice) are kept
and training stops after ``patience`` validations without improvement. The train/validation split
is fixed by the content hashes of the cases (never re-shuffled between runs) and stored in the card.

:func:`finetune` runs the steps in order: the split, the starting network (:mod:`lrc.train.transfer`),
the contrast term, the patch sampler, the card, the loop (:mod:`lrc.train.finetune_loop`, validating
with :mod:`lrc.train.validation`), and the model directory written with the best weights.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lrc.device import resolve_device
from lrc.intensity import IntensityWindow
from lrc.io.labels import LabelTable
from lrc.io.volume import Volume
from lrc.model_dirs.card import ModelCard
from lrc.model_dirs.store import check_model_target, save_model
from lrc.nets.unet import UNet
from lrc.runtime import tune_cpu_allocator
from lrc.superpixels import SuperpixelCache
from lrc.train.contrast_term import ContrastTerm, Unlabeled
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.finetune_loop import Best, Progress, Snapshot, Validating, fit
from lrc.train.patches import PatchSampler, SlicePatchSampler, VolumePatchSampler, build_volumes
from lrc.train.pretrain import PretrainConfig
from lrc.train.slices import Preparing, build_slices, volume_sha256
from lrc.train.transfer import Start, head_values, start_network
from lrc.train.validation import validate

__all__ = ["Case", "FinetuneConfig", "finetune", "fixed_split", "validate"]
log = logging.getLogger(__name__)
Case = tuple[Volume, Volume]  # image, label map on the image's grid


def fixed_split(cases: list[Case], fraction: float) -> tuple[list[int], list[int]]:
    """Train and validation indices, decided by content hashes only (stable across runs and orders).

    Cases are ranked by the hash of their image; the last ``ceil(fraction * n)`` are held out
    (none when there is a single case).
    """
    hashes = [volume_sha256(image) for image, _ in cases]
    ranked = sorted(range(len(cases)), key=lambda i: hashes[i])
    held = 0 if len(cases) < 2 else max(1, math.ceil(fraction * len(cases)))
    return sorted(ranked[: len(cases) - held]), sorted(ranked[len(cases) - held :])


def finetune(
    train: list[Case],
    labels: LabelTable,
    out: str | Path,
    config: FinetuneConfig | None = None,
    *,
    validation: list[Case] | None = None,
    init: str | Path | None = None,
    device: str | torch.device = "auto",
    progress: Progress | None = None,
    unlabeled: Unlabeled | None = None,
    numbering: LabelTable | None = None,
    validating: Validating | None = None,
    preparing: Preparing | None = None,
    snapshot: Snapshot | None = None,
) -> Path:
    """Fine-tune and write a ``segmentation`` model directory.

    The model learns the structures of ``labels``. The values it writes (its card's label table)
    are those ``numbering`` gives the same structures (by name or SNOMED CT code), else the
    segmentation model ``init``'s, else those of ``labels``; new structures keep their value where
    it is free (:func:`lrc.label_match.number_labels`). From a segmentation model, the output
    layer's channel of each structure the base segments starts from the base's channel of that
    structure (the weights follow the name, not the position); new structures get new channels.

    Args:
        train: labelled cases (all of them, when ``validation`` is ``None``: a fixed split is drawn).
        labels: label table of the cases' label maps (value in the map -> structure).
        out: model directory to write.
        config: settings (not changed: the card records them as resolved).
        validation: held-out cases, or ``None``.
        init: a ``pretrained`` (or ``segmentation``) model directory, or ``None`` for scratch.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        progress: called as ``progress(step, metrics)``.
        unlabeled: volumes for the contrast term (``config.contrast_weight > 0``), with its settings.
        numbering: the label table whose values the model keeps for the structures it shares (the
            production version of the model name this one joins), or ``None``.
        validating: called as ``validating(step, done)`` while a validation pass runs, ``done`` the
            fraction of its slices predicted.
        preparing: called while the training slices (or volumes) are built, before the first step, with
            the share done (:data:`lrc.train.slices.Preparing`; it may raise to stop).
        snapshot: called as ``snapshot(step, net)`` after every step's update, before its
            validation, with the network being trained (copy what you keep: training goes on with it).

    Raises:
        LabelMismatch: a structure of ``labels`` matches several of the numbering, or two match one.
        OutputError: ``out`` cannot take a model (checked before any work).
    """
    config = replace(config) if config else FinetuneConfig()  # settings resolved below on this copy only
    if config.contrast_weight > 0 and not (unlabeled and unlabeled.images):
        raise ValueError("contrast_weight > 0 needs unlabeled volumes")
    device = resolve_device(device)
    check_model_target(out)
    if device.type == "cpu":
        tune_cpu_allocator()
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    if validation is None:
        train_index, validation_index = fixed_split(train, config.validation_fraction)
        train, validation = [train[i] for i in train_index], [train[i] for i in validation_index]
    start = start_network(IntensityWindow.for_modality(train[0][0].modality), labels, numbering, init, config)
    net = start.net.to(device)
    contrast = None
    if config.contrast_weight > 0:
        assert unlabeled is not None
        contrast = _contrast_term(net, config, unlabeled, start.base, start.window, Path(out), device)
    sampler, spacing = _sampler(train, start, config, preparing)
    card = _card(net, start, labels, config, sampler.shape, spacing, train, validation, device)
    if contrast is not None:
        card.training["contrast"] = {"config": contrast.config.to_json(), "data": contrast.data}
    best = fit(net, card, labels, sampler, validation, config, start, contrast, progress, validating, snapshot)
    return _write(out, net, card, best, started)


def _sampler(
    train: list[Case], start: Start, config: FinetuneConfig, preparing: Preparing | None
) -> tuple[PatchSampler, tuple[float, float, float | None]]:
    """The patches of the training cases on the model's grid (slices in 2D, volumes in 3D), and that grid's spacing."""
    rng = np.random.default_rng(config.seed)
    if config.spatial_dims == 2:
        slices = build_slices(
            [c[0] for c in train],
            start.window,
            config.spacing,
            config.canvas,
            labels=[c[1] for c in train],
            class_of=start.class_of,
            preparing=preparing,
        )
        sampler = SlicePatchSampler(
            slices, config.patch, config.batch_size, config.foreground_fraction, rng, config.spatial, config.flip
        )
        return sampler, (config.spacing, config.spacing, None)
    spacing = (config.spacing, config.spacing, config.spacing_z or config.spacing)
    volumes = build_volumes(train, start.window, spacing, start.class_of, preparing)
    shape = (config.patch, config.patch, config.patch_depth)
    return VolumePatchSampler(volumes, shape, config.batch_size, config.foreground_fraction, rng, config.flip), spacing


def _card(
    net: UNet,
    start: Start,
    labels: LabelTable,
    config: FinetuneConfig,
    patch: tuple[int, ...],
    spacing: tuple[float, float, float | None],
    train: list[Case],
    validation: list[Case],
    device: torch.device,
) -> ModelCard:
    """The new model's card before training: grid, labels, parent, settings as resolved, split and data."""
    output = start.output
    card = ModelCard(
        kind="segmentation",
        architecture="",
        arguments=dict(net.arguments),
        window=start.window,
        spacing=spacing,
        canvas=config.canvas,
        labels=output,
        parent=start.parent,
        training={
            "method": "finetune",
            "init": "scratch" if start.base is None else "pretrained",
            "config": config.to_json(),
            "dataset_labels": {str(v): labels[v].name for v in labels},
            "head_from_base": sorted(output[v].name for v in head_values(output, start.head)),
            "split": {
                "train": [volume_sha256(c[0]) for c in train],
                "validation": [volume_sha256(c[0]) for c in validation],
            },
            "data": [{"image": volume_sha256(i), "label": volume_sha256(lab)} for i, lab in train + validation],
            "seeds": {"torch": config.seed, "numpy": config.seed},
            "device": str(device),
            "patch": list(patch),
        },
    )
    card.inference_tile = card.tile_side(config.tile)  # validation predicts this way too
    return card


def _write(out: str | Path, net: UNet, card: ModelCard, best: Best, started: float) -> Path:
    """Load the best weights into ``net``, record the run's outcome in ``card`` and save the model directory."""
    card.training["seconds"] = round(time.perf_counter() - started, 1)
    card.training["steps"] = best.steps
    card.training["best_step"] = best.step
    card.metrics = best.metrics
    net.load_state_dict(best.state)
    return save_model(out, net, card)


def _contrast_term(
    net: UNet,
    config: FinetuneConfig,
    unlabeled: Unlabeled,
    parent: ModelCard | None,
    window: IntensityWindow,
    out: Path,
    device: torch.device,
) -> ContrastTerm:
    """The contrast term: ``unlabeled.config``, else the ``pretrained`` parent's, else the defaults on this grid."""
    if unlabeled.config is not None:
        settings = unlabeled.config
    elif parent is not None and parent.kind == "pretrained":
        settings = PretrainConfig.from_json(parent.training["config"])
    else:
        view = min(PretrainConfig.view_size, config.canvas)
        settings = PretrainConfig(
            spacing=config.spacing, canvas=config.canvas, view_size=view, features=config.features, seed=config.seed
        )
    if (settings.spacing, settings.canvas) != (config.spacing, config.canvas):
        theirs, ours = f"{settings.spacing} mm, {settings.canvas} px", f"{config.spacing} mm, {config.canvas} px"
        raise ValueError(f"the contrast term's grid ({theirs}) is not the fine-tuning's ({ours})")
    cache = SuperpixelCache(unlabeled.cache_dir or out.parent / ".superpixel-cache", settings.superpixels)
    return ContrastTerm(net, settings, unlabeled.images, window, cache, device, config.seed)
