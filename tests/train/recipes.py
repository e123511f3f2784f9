"""Small training settings shared by the training tests, and a look at a saved model's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrc.io.labels import LabelTable
from lrc.model_dirs.store import load_model
from lrc.train.pretrain import PretrainConfig

SMALL = (8, 8, 16, 16, 32, 8)  # U-Net features: fast on the CPU
LABELS = LabelTable.from_names({5: "liver", 1: "spleen"})
ENCODER = ("conv_0.", "down_1.", "down_2.", "down_3.", "down_4.")
DECODER = ("upcat_1.", "upcat_2.", "upcat_3.", "upcat_4.")


def small_pretrain(method: str = "moco+lrc", seed: int = 0, steps: int = 3) -> PretrainConfig:
    """Pre-training at 6 mm on a 64-pixel canvas with the small network."""
    return PretrainConfig(
        method=method,
        steps=steps,
        batch_size=4,
        spacing=6.0,
        canvas=64,
        view_size=48,
        features=SMALL,
        queue_size=64,
        regions_per_image=8,
        pixels_per_region=4,
        seed=seed,
    )


def weights(model: Path, prefix: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The saved weights of ``model`` whose names start with ``prefix``."""
    net, _ = load_model(model)
    return {k: v.numpy() for k, v in net.state_dict().items() if k.startswith(prefix)}
