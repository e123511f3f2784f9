"""What a fine-tuning takes from its base: the layers transferred, shrink and perturb, the rate defaults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lrc.model_dirs.store import read_card
from lrc.train.finetune import finetune
from lrc.train.finetune_config import SELF_SUPERVISED_LR_FACTOR, FinetuneConfig
from tests.train.recipes import DECODER, ENCODER, LABELS, SMALL, weights


@pytest.mark.parametrize(
    ("transfer", "reinit", "kept"),
    [
        ("all", (), ENCODER + DECODER),
        ("encoder", (), ENCODER),
        ("all", ("down_4", "upcat_4"), ENCODER[:4] + DECODER[:3]),
        ("encoder", ("down_3", "down_4"), ENCODER[:3]),
    ],
)
def test_transfer_gives_the_chosen_layers(pretrained: Path, subject_a, tmp_path: Path, transfer, reinit, kept):
    # a factor of 0 keeps every transferred layer exactly as pre-trained; the others train from random
    config = FinetuneConfig(steps=2, batch_size=2, patch=48, backbone_lr_factor=0.0, transfer=transfer, reinit=reinit)
    model = finetune([subject_a], LABELS, tmp_path / "seg", config, validation=[], init=pretrained, device="cpu")
    before, after = weights(pretrained, ENCODER + DECODER), weights(model, ENCODER + DECODER)
    assert before.keys() == after.keys()
    assert all(any(k.startswith(stage) for k in before) for stage in ENCODER + DECODER)
    for name, value in before.items():
        same = np.array_equal(value, after[name])
        assert same == name.startswith(kept), name
    written = read_card(model).training["config"]
    assert (written["transfer"], written["reinit"]) == (transfer, list(reinit))


def test_the_rate_of_transferred_layers_defaults_by_the_kind_of_base(pretrained: Path, subject_a, tmp_path: Path):
    """3x the rate from a self-supervised model (docs/research/REPORT.md), 1x from a segmentation model or scratch;
    the card records the factor used, and a given factor wins."""
    config = FinetuneConfig(steps=2, batch_size=2, patch=48)
    assert config.backbone_lr_factor is None

    def factor(name: str, init: Path | None, **changes: object) -> float:
        model = finetune(
            [subject_a], LABELS, tmp_path / name, replace(config, **changes), validation=[], init=init, device="cpu"
        )
        return float(read_card(model).training["config"]["backbone_lr_factor"])

    assert factor("from-pretrained", pretrained) == SELF_SUPERVISED_LR_FACTOR == 3.0
    assert factor("given", pretrained, backbone_lr_factor=0.5) == 0.5
    assert factor("from-segmentation", tmp_path / "from-pretrained") == 1.0
    assert factor("scratch", None, canvas=64, spacing=6.0, features=SMALL) == 1.0
    with pytest.raises(ValueError, match="backbone_lr_factor must be >= 0"):
        FinetuneConfig(backbone_lr_factor=-1.0)


def test_shrink_and_perturb_start_from_a_mix_of_pretrained_and_freshweights(
    pretrained: Path, subject_a, tmp_path: Path
):
    # a learning-rate factor of 0 keeps the transferred layers at their (mixed) starting values
    base = FinetuneConfig(steps=1, batch_size=2, patch=48, backbone_lr_factor=0.0)
    runs = {
        name: weights(
            finetune([subject_a], LABELS, tmp_path / name, replace(base, **extra), validation=[], init=pretrained),
            ENCODER + DECODER,
        )
        for name, extra in (("shrunk", {"shrink": 0.5}), ("mixed", {"shrink": 0.5, "perturb": 0.5}))
    }
    before = weights(pretrained, ENCODER + DECODER)
    for name, value in before.items():
        assert_allclose(runs["shrunk"][name], 0.5 * value, rtol=1e-6, atol=1e-8)
        fresh = (runs["mixed"][name] - 0.5 * value) / 0.5
        if ".adn.N." in name:  # instance-norm affine parameters: checked below
            continue
        assert not np.allclose(fresh, 0.0), name  # a fresh initialisation was mixed in, not nothing
        assert not np.allclose(fresh, value), name  # and not the pre-trained weights again
    norm_weights = [n for n in before if n.endswith(".adn.N.weight")]
    assert norm_weights  # instance-norm scales start at 1 in a fresh network
    for name in norm_weights:
        assert_allclose(runs["mixed"][name], 0.5 * before[name] + 0.5, rtol=1e-6)
