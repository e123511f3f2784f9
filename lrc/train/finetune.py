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
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss

from lrc.device import autocast, resolve_device
from lrc.evaluate import evaluate, mean_dice, summarize
from lrc.infer.predictor import Predictor
from lrc.intensity import IntensityWindow
from lrc.io.labels import LabelTable
from lrc.io.volume import Volume
from lrc.label_match import LabelMismatch, match_labels, number_labels
from lrc.models.card import ModelCard
from lrc.models.store import check_model_target, load_model, save_model
from lrc.nets.stages import ENCODER_STAGES
from lrc.nets.unet import UNet
from lrc.runtime import tune_cpu_allocator
from lrc.superpixels import SuperpixelCache
from lrc.train.contrast_term import ContrastTerm, Unlabeled
from lrc.train.finetune_config import SELF_SUPERVISED_LR_FACTOR, FinetuneConfig
from lrc.train.patches import PatchSampler, SlicePatchSampler, VolumePatchSampler, build_volumes
from lrc.train.pretrain import PretrainConfig
from lrc.train.slices import Preparing, build_slices, volume_sha256

log = logging.getLogger(__name__)
Case = tuple[Volume, Volume]  # image, label map on the image's grid
Progress = Callable[[int, dict[str, float]], None]
Validating = Callable[[int, float], None]  # (step, fraction of the validation pass done)
Snapshot = Callable[[int, torch.nn.Module], None]  # (step, the network after that step's update)
ENCODER = tuple(f"{stage}." for stage in ENCODER_STAGES)  # parameter-name prefixes of the encoder


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
    window = IntensityWindow.for_modality(train[0][0].modality)
    parent = parent_card = None
    transferred: set[str] = set()  # parameter names initialised from ``init``
    head: dict[int, int] = {}  # output channel -> the base's channel of the same structure
    dims = config.spatial_dims
    source: UNet | None = None
    if init is not None:
        source, parent_card = load_model(init)
    base_labels = parent_card.labels if parent_card is not None and parent_card.kind == "segmentation" else None
    output = number_labels(labels, numbering if numbering is not None else base_labels)
    class_of = _classes(output, labels)
    net = UNet(dims, 1, len(output) + 1, config.features)
    if source is not None and parent_card is not None:
        if source.arguments["spatial_dims"] != dims:
            raise ValueError(f"{init} is a {source.arguments['spatial_dims']}D network; this fine-tuning is {dims}D")
        window, config.spacing, config.canvas = parent_card.window, parent_card.spacing[0], parent_card.canvas
        config.spacing_z = parent_card.spacing[2] if dims == 3 else None
        config.patch = min(config.patch, config.canvas)
        net = UNet(dims, 1, len(output) + 1, source.arguments["features"])
        weights = {k: v for k, v in source.state_dict().items() if _given(k, config)}
        mixing = (config.shrink, config.perturb) != (1.0, 0.0)
        fresh = {k: v.detach().clone() for k, v in net.state_dict().items()} if mixing else {}
        missing, unexpected = net.load_state_dict(weights, strict=False)
        skipped = [k for k in missing if _given(k, config)]
        if unexpected or skipped or not weights:
            raise ValueError(f"{init}: weights do not fit this network (missing {missing}, unexpected {unexpected})")
        transferred = set(weights)
        shrink_perturb(net, fresh, transferred, config.shrink, config.perturb)
        if base_labels is not None:
            head = _head_channels(output, base_labels)
            copy_channels(net.final_conv, source.final_conv, head)
        if config.backbone_lr_factor is None:
            config.backbone_lr_factor = SELF_SUPERVISED_LR_FACTOR if parent_card.kind == "pretrained" else 1.0
        if config.tile is None and dims == 2:  # self-supervised: tiles; a segmentation model: as it predicts
            config.tile = "patch" if parent_card.kind == "pretrained" or parent_card.inference_tile else "slice"
        parent = {
            "path": str(init),
            "kind": parent_card.kind,
            "weights_sha256": parent_card.weights_sha256,
            "method": parent_card.training.get("method"),
        }
    if config.backbone_lr_factor is None:
        config.backbone_lr_factor = 1.0  # nothing transferred: recorded as the plain rate
    # The layers at the backbone's rate: the transferred ones, or from scratch the same layers (a rate control).
    boosted = transferred or {n for n, _ in net.named_parameters() if _given(n, config)}
    if config.tile is None:
        config.tile = "slice"
    net = net.to(device)
    contrast = None
    if config.contrast_weight > 0:
        assert unlabeled is not None
        contrast = _contrast_term(net, config, unlabeled, parent_card, window, Path(out), device)
    rng = np.random.default_rng(config.seed)
    spacing: tuple[float, float, float | None] = (config.spacing, config.spacing, None)
    sampler: PatchSampler
    if dims == 2:
        slices = build_slices(
            [c[0] for c in train],
            window,
            config.spacing,
            config.canvas,
            labels=[c[1] for c in train],
            class_of=class_of,
            preparing=preparing,
        )
        sampler = SlicePatchSampler(
            slices, config.patch, config.batch_size, config.foreground_fraction, rng, config.spatial, config.flip
        )
    else:
        spacing_3d = (config.spacing, config.spacing, config.spacing_z or config.spacing)
        spacing = spacing_3d
        volumes = build_volumes(train, window, spacing_3d, class_of, preparing)
        shape = (config.patch, config.patch, config.patch_depth)
        sampler = VolumePatchSampler(volumes, shape, config.batch_size, config.foreground_fraction, rng, config.flip)
    card = ModelCard(
        kind="segmentation",
        architecture="",
        arguments=dict(net.arguments),
        window=window,
        spacing=spacing,
        canvas=config.canvas,
        labels=output,
        parent=parent,
        training={
            "method": "finetune",
            "init": "scratch" if init is None else "pretrained",
            "config": config.to_json(),
            "dataset_labels": {str(v): labels[v].name for v in labels},
            "head_from_base": sorted(output[v].name for v in _values(output, head)),
            "split": {
                "train": [volume_sha256(c[0]) for c in train],
                "validation": [volume_sha256(c[0]) for c in validation],
            },
            "data": [{"image": volume_sha256(i), "label": volume_sha256(lab)} for i, lab in train + validation],
            "seeds": {"torch": config.seed, "numpy": config.seed},
            "device": str(device),
            "patch": list(sampler.shape),
        },
    )
    if contrast is not None:
        card.training["contrast"] = {"config": contrast.config.to_json(), "data": contrast.data}
    card.inference_tile = card.tile_side(config.tile)  # validation predicts this way too
    best = _train(
        net,
        card,
        labels,
        sampler,
        validation,
        config,
        device,
        progress,
        transferred,
        boosted,
        contrast,
        validating,
        snapshot,
    )
    card.training["seconds"] = round(time.perf_counter() - started, 1)
    card.training["steps"] = best["steps"]
    card.training["best_step"] = best["step"]
    card.metrics = best["metrics"]
    net.load_state_dict(best["state"])
    return save_model(out, net, card)


def _train(
    net: UNet,
    card: ModelCard,
    reference: LabelTable,
    sampler: PatchSampler,
    validation: list[Case],
    config: FinetuneConfig,
    device: torch.device,
    progress: Progress | None,
    transferred: set[str],
    boosted: set[str],
    contrast: ContrastTerm | None = None,
    validating: Validating | None = None,
    snapshot: Snapshot | None = None,
) -> dict[str, Any]:
    factor = config.backbone_lr_factor
    assert factor is not None  # resolved by finetune()
    old = [p for n, p in net.named_parameters() if n in boosted]
    new = [p for n, p in net.named_parameters() if n not in boosted]
    heads = contrast.heads() if contrast else []
    # L2-SP pulls transferred weights back to where they started; from scratch there is nothing to keep.
    anchors = [p.detach().clone() for p in old] if config.anchor_weight > 0 and transferred else []
    optimizer = torch.optim.AdamW(
        [
            {"params": old, "lr": config.lr * factor, "weight_decay": 0.0 if anchors else config.weight_decay},
            {"params": new + heads, "lr": config.lr},
        ],
        weight_decay=config.weight_decay,
    )
    warmup = config.warmup_steps if transferred else 0
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        [functools.partial(_cosine, start=warmup, steps=config.steps), functools.partial(_cosine, steps=config.steps)],
    )
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    best: dict[str, Any] = {"score": -1.0, "step": 0, "state": _copy_state(net), "metrics": None, "steps": 0}
    waited = 0
    for step in range(1, config.steps + 1):
        net.train()
        images, targets = sampler.batch(device)  # B x 1 x P x P[ x D], B x 1 x P x P[ x D]
        with autocast(device):
            loss = loss_fn(net(images).float(), targets)
        metrics = {"loss": float(loss.detach())}
        if contrast is not None and step % config.contrast_every == 0:
            term, parts = contrast.loss()
            loss = loss + config.contrast_weight * term
            metrics |= {"contrast": float(term.detach())} | {f"contrast_{k}": v for k, v in parts.items()}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if anchors:  # L2-SP, decoupled: back towards the pre-trained values at this step's rate
            pull_towards(old, anchors, optimizer.param_groups[0]["lr"] * config.anchor_weight)
        schedule.step()
        if snapshot:
            snapshot(step, net)
        best["steps"] = step
        last = step == config.steps
        if validation and (step % config.validate_every == 0 or last):
            done = functools.partial(validating, step) if validating else None
            scores = validate(net, card, validation, device, reference, done)
            if scores["mean_dice"] is not None:
                metrics["val_mean_dice"] = scores["mean_dice"]
            if scores["mean_dice"] is not None and scores["mean_dice"] > best["score"]:
                best.update(score=scores["mean_dice"], step=step, state=_copy_state(net), metrics=scores)
                waited = 0
            else:
                waited += 1
        if progress:
            progress(step, metrics)
        if validation and waited >= config.patience:
            log.info("early stop at step %d (best %d)", step, best["step"])
            break
    if not validation:
        best.update(step=best["steps"], state=_copy_state(net))
    return best


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


def validate(
    net: UNet,
    card: ModelCard,
    cases: list[Case],
    device: torch.device,
    reference: LabelTable,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Dice and HD95 per structure on whole held-out volumes, through the real predictor.

    ``reference`` numbers the cases' label maps; structures are matched to the model's by name or
    code (:func:`lrc.label_match.match_labels`), and those only one side has are listed apart.
    ``progress`` is called with the fraction of the cases' slices predicted so far.

    Raises:
        LabelMismatch: the model and the reference share no structure.
    """
    assert card.labels is not None
    labels = match_labels(card.labels, reference)
    predictor = Predictor(net, card, device)
    total, before = sum(image.shape[2] for image, _ in cases), 0
    per_case = []
    for image, label in cases:
        counted = functools.partial(_fraction, progress, before, total) if progress else None
        per_case.append(evaluate(predictor.predict(image, progress=counted), label, labels))
        before += image.shape[2]
    per_label = summarize(per_case)
    return {
        "dice": {name: m["dice"] for name, m in per_label.items()},
        "hd95": {name: m["hd95"] for name, m in per_label.items()},
        "mean_dice": mean_dice(per_label),
        "cases": len(cases),
        "per_case": per_case,
        "labels": labels.to_json(),
    }


def _fraction(progress: Callable[[float], None], before: int, total: int, done: int, _: int) -> None:
    progress((before + done) / max(1, total))


def _classes(output: LabelTable, labels: LabelTable) -> dict[int, int]:
    """Value in the cases' label maps -> the model's class index (1-based position in ``output``)."""
    index = {value: position for position, value in enumerate(output, start=1)}
    return {pair.reference: index[pair.model] for pair in match_labels(output, labels).pairs}


def _head_channels(output: LabelTable, base: LabelTable) -> dict[int, int]:
    """Output channel -> the base's channel of the same structure (background 0 -> 0)."""
    mine = {value: position for position, value in enumerate(output, start=1)}
    theirs = {value: position for position, value in enumerate(base, start=1)}
    try:
        shared = match_labels(output, base).pairs
    except LabelMismatch:  # nothing in common: only the background channel carries over
        shared = ()
    return {0: 0} | {mine[pair.model]: theirs[pair.reference] for pair in shared}


def _values(table: LabelTable, channels: dict[int, int]) -> list[int]:
    """The label values of the (non-background) output channels in ``channels``."""
    values = list(table)
    return [values[channel - 1] for channel in channels if channel > 0]


@torch.no_grad()
def copy_channels(target: torch.nn.Module, source: torch.nn.Module, channels: dict[int, int]) -> None:
    """Copy output channels of a convolution: ``target``'s channel ``c`` takes ``source``'s ``channels[c]``."""
    given = dict(source.named_parameters())
    for name, param in target.named_parameters():
        for mine, theirs in channels.items():
            param[mine] = given[name][theirs].to(param.device, param.dtype)


def _given(name: str, config: FinetuneConfig) -> bool:
    """Whether the state entry ``name`` comes from the pre-trained network under ``config``."""
    if name.startswith(("final_conv.", *(f"{stage}." for stage in config.reinit))):
        return False
    return config.transfer != "encoder" or name.startswith(ENCODER)


@torch.no_grad()
def pull_towards(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], rate: float) -> None:
    """Move each parameter ``rate`` of the way to its anchor, in place (``rate`` 0: no change)."""
    if rate > 0:
        for param, anchor in zip(params, anchors, strict=True):
            param.lerp_(anchor, rate)


@torch.no_grad()
def shrink_perturb(
    net: torch.nn.Module, fresh: dict[str, torch.Tensor], names: set[str], shrink: float, perturb: float
) -> None:
    """Set each state entry of ``names`` to ``shrink * current + perturb * fresh[name]``, in place."""
    if shrink == 1 and perturb == 0:
        return
    for name, value in net.state_dict().items():
        if name in names:
            value.mul_(shrink).add_(fresh[name].to(value.device, value.dtype), alpha=perturb)


def _cosine(step: int, steps: int, start: int = 0) -> float:
    """Learning-rate factor at ``step``: 0 before ``start``, then half a cosine from 1 to 0 at ``steps``."""
    if step < start:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - start) / (steps - start)))


def _copy_state(net: UNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
