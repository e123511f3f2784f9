"""The fine-tuning loop: optimiser and schedule, one step, validation and the best weights kept.

AdamW with two parameter groups (the backbone's layers at ``backbone_lr_factor`` times the rate,
the rest and any contrast heads at the rate), each on a cosine schedule, the backbone's frozen for
``warmup_steps`` when it was transferred; L2-SP (``anchor_weight``) as a decoupled pull towards the
transferred values after each step. Dice + cross-entropy on each batch of patches, plus the contrast
term every ``contrast_every`` steps. Validation every ``validate_every`` steps (and at the last) keeps
the weights of the best mean Dice and stops after ``patience`` validations without improvement.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from monai.losses import DiceCELoss

from lrc.device import autocast
from lrc.io.labels import LabelTable
from lrc.model_dirs.card import ModelCard
from lrc.nets.unet import UNet
from lrc.train.contrast_term import ContrastTerm
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.patches import PatchSampler
from lrc.train.transfer import Start
from lrc.train.validation import validate

if TYPE_CHECKING:
    from lrc.io.volume import Volume

log = logging.getLogger(__name__)
Progress = Callable[[int, dict[str, float]], None]
Validating = Callable[[int, float], None]  # (step, fraction of the validation pass done)
Snapshot = Callable[[int, torch.nn.Module], None]  # (step, the network after that step's update)


@dataclass
class Optimizing:
    """The optimiser, its schedule, and the L2-SP anchors of the backbone's layers (none when off)."""

    optimizer: torch.optim.AdamW
    schedule: torch.optim.lr_scheduler.LambdaLR
    backbone: list[torch.nn.Parameter]
    anchors: list[torch.Tensor]
    anchor_weight: float

    def step(self) -> None:
        """Apply the gradients, pull the backbone towards its anchors at this step's rate, advance the schedule."""
        self.optimizer.step()
        if self.anchors:  # L2-SP, decoupled: back towards the pre-trained values at this step's rate
            pull_towards(self.backbone, self.anchors, self.optimizer.param_groups[0]["lr"] * self.anchor_weight)
        self.schedule.step()


def make_optimizer(net: UNet, config: FinetuneConfig, start: Start, contrast: ContrastTerm | None) -> Optimizing:
    """AdamW over ``net`` (and the contrast heads) with the backbone's rate, warm-up and anchors of ``config``."""
    factor = config.backbone_lr_factor
    assert factor is not None  # resolved by start_network()
    old = [p for n, p in net.named_parameters() if n in start.boosted]
    new = [p for n, p in net.named_parameters() if n not in start.boosted]
    heads = contrast.heads() if contrast else []
    # L2-SP pulls transferred weights back to where they started; from scratch there is nothing to keep.
    anchors = [p.detach().clone() for p in old] if config.anchor_weight > 0 and start.transferred else []
    optimizer = torch.optim.AdamW(
        [
            {"params": old, "lr": config.lr * factor, "weight_decay": 0.0 if anchors else config.weight_decay},
            {"params": new + heads, "lr": config.lr},
        ],
        weight_decay=config.weight_decay,
    )
    warmup = config.warmup_steps if start.transferred else 0
    backbone_factor = functools.partial(cosine_schedule, start=warmup, steps=config.steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [backbone_factor, functools.partial(cosine_schedule, steps=config.steps)]
    )
    return Optimizing(optimizer, schedule, old, anchors, config.anchor_weight)


@dataclass
class Best:
    """The best weights so far by validation mean Dice, and how many validations have not improved on them.

    Attributes:
        state: the kept weights (those of the start until a validation scores).
        score: their mean Dice (-1 before any). step: the step they are from (0: the start).
        metrics: their validation scores, or ``None``. steps: the steps run. waited: validations since the best.
    """

    state: dict[str, torch.Tensor]
    score: float = -1.0
    step: int = 0
    metrics: dict[str, Any] | None = None
    steps: int = 0
    waited: int = 0

    def offer(self, step: int, scores: dict[str, Any], net: UNet) -> None:
        """Keep ``net``'s weights if ``scores`` beat the best mean Dice, else count a validation without gain."""
        if scores["mean_dice"] is not None and scores["mean_dice"] > self.score:
            self.score, self.step, self.state, self.metrics = scores["mean_dice"], step, copy_state(net), scores
            self.waited = 0
        else:
            self.waited += 1


def train_step(
    net: UNet,
    optimizing: Optimizing,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sampler: PatchSampler,
    contrast: ContrastTerm | None,
    config: FinetuneConfig,
    step: int,
) -> dict[str, float]:
    """One optimisation step on a batch of patches; its metrics (``loss`` is the supervised loss alone)."""
    device = next(net.parameters()).device
    net.train()
    images, targets = sampler.batch(device)  # B x 1 x P x P[ x D], B x 1 x P x P[ x D]
    with autocast(device):
        loss = loss_fn(net(images).float(), targets)
    metrics = {"loss": float(loss.detach())}
    if contrast is not None and step % config.contrast_every == 0:
        term, parts = contrast.loss()
        loss = loss + config.contrast_weight * term
        metrics |= {"contrast": float(term.detach())} | {f"contrast_{k}": v for k, v in parts.items()}
    optimizing.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizing.step()
    return metrics


def fit(
    net: UNet,
    card: ModelCard,
    reference: LabelTable,
    sampler: PatchSampler,
    validation: list[tuple[Volume, Volume]],
    config: FinetuneConfig,
    start: Start,
    contrast: ContrastTerm | None = None,
    progress: Progress | None = None,
    validating: Validating | None = None,
    snapshot: Snapshot | None = None,
) -> Best:
    """Run up to ``config.steps`` steps on ``net`` (on its device); the best weights (the last without validation)."""
    device = next(net.parameters()).device
    optimizing = make_optimizer(net, config, start, contrast)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    best = Best(copy_state(net))
    for step in range(1, config.steps + 1):
        metrics = train_step(net, optimizing, loss_fn, sampler, contrast, config, step)
        if snapshot:
            snapshot(step, net)
        best.steps = step
        if validation and (step % config.validate_every == 0 or step == config.steps):
            done = functools.partial(validating, step) if validating else None
            scores = validate(net, card, validation, device, reference, done)
            if scores["mean_dice"] is not None:
                metrics["val_mean_dice"] = scores["mean_dice"]
            best.offer(step, scores, net)
        if progress:
            progress(step, metrics)
        if validation and best.waited >= config.patience:
            log.info("early stop at step %d (best %d)", step, best.step)
            break
    if not validation:
        best.step, best.state = best.steps, copy_state(net)
    return best


@torch.no_grad()
def pull_towards(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], rate: float) -> None:
    """Move each parameter ``rate`` of the way to its anchor, in place (``rate`` 0: no change)."""
    if rate > 0:
        for param, anchor in zip(params, anchors, strict=True):
            param.lerp_(anchor, rate)


def cosine_schedule(step: int, steps: int, start: int = 0) -> float:
    """Learning-rate factor at ``step``: 0 before ``start``, then half a cosine from 1 to 0 at ``steps``."""
    if step < start:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - start) / (steps - start)))


def copy_state(net: UNet) -> dict[str, torch.Tensor]:
    """A detached copy of ``net``'s weights."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
