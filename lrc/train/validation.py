"""Scoring a segmentation network on whole held-out volumes, as the model will predict them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from lrc.evaluate import evaluate, mean_dice, summarize
from lrc.infer.predictor import Predictor
from lrc.io.labels import LabelTable
from lrc.io.volume import Volume
from lrc.label_match import match_labels
from lrc.model_dirs.card import ModelCard
from lrc.nets.unet import UNet


def validate(
    net: UNet,
    card: ModelCard,
    cases: list[tuple[Volume, Volume]],
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
