"""The pre-training objective kept on during fine-tuning (``FinetuneConfig.contrast_weight``), on the real CT."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lrc.model_dirs.store import load_model, read_card
from lrc.superpixels import SuperpixelParams
from lrc.train.contrast_term import Unlabeled
from lrc.train.finetune import finetune
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.pretrain import PretrainConfig, pretrain
from lrc.train.pretrainer import Pretrainer
from tests.train.recipes import LABELS, SMALL

TUNE = FinetuneConfig(steps=4, batch_size=2, patch=48, canvas=64, spacing=6.0, features=SMALL, seed=0)


def small(method: str = "moco+lrc", **changes: object) -> PretrainConfig:
    settings: dict = {"steps": 2, "batch_size": 4, "spacing": 6.0, "canvas": 64, "view_size": 48, "features": SMALL}
    return PretrainConfig(method, queue_size=64, regions_per_image=8, pixels_per_region=4, **settings | changes)


@pytest.fixture(scope="module")
def pretrained(subject_a, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("contrast") / "pretrained"
    recipe = small(momentum=0.99, negative_margin=0.05, superpixels=SuperpixelParams(scale=200.0))
    return pretrain([subject_a[0]], out, recipe, device="cpu", cache_dir=out.parent / "cache")


def test_fine_tuning_keeps_the_parents_objective_on(pretrained: Path, subject_a, tmp_path: Path):
    """Every ``contrast_every`` steps the loss gains the parent's MoCo+LRC terms; the card says with which
    settings and data; the projection heads are not saved; the term changes the weights."""
    seen: dict[int, dict[str, float]] = {}
    config = replace(TUNE, contrast_weight=0.5, contrast_every=2)
    unlabeled = Unlabeled([subject_a[0]], cache_dir=tmp_path / "cache")
    model = finetune(
        [subject_a],
        LABELS,
        tmp_path / "joint",
        config,
        validation=[],
        init=pretrained,
        device="cpu",
        progress=lambda step, metrics: seen.update({step: metrics}),
        unlabeled=unlabeled,
    )
    assert [step for step in seen if "contrast" in seen[step]] == [2, 4]
    assert {"contrast_global", "contrast_local", "contrast_regions"} <= set(seen[2])
    card = read_card(model)
    assert card.training["contrast"]["config"] == read_card(pretrained).training["config"]
    assert card.training["contrast"]["data"] == read_card(pretrained).training["data"]
    assert card.training["config"]["contrast_weight"] == 0.5
    with pytest.raises(RuntimeError, match="optimised elsewhere"):  # the term never steps on its own
        Pretrainer(small(), "cpu", backbone=load_model(model)[0]).step(
            torch.zeros(4, 1, 64, 64), torch.zeros(4, 64, 64)
        )

    plain = finetune([subject_a], LABELS, tmp_path / "plain", TUNE, validation=[], init=pretrained, device="cpu")
    joint_net, plain_net = load_model(model)[0], load_model(plain)[0]
    assert joint_net.state_dict().keys() == plain_net.state_dict().keys()
    changed = [
        name for name, value in joint_net.state_dict().items() if not torch.equal(value, plain_net.state_dict()[name])
    ]
    assert "conv_0.conv_0.conv.weight" in changed


def test_from_scratch_the_term_takes_the_defaults_on_the_fine_tuning_grid(subject_a, tmp_path: Path):
    config = replace(TUNE, steps=2, contrast_weight=1.0)
    unlabeled = Unlabeled([subject_a[0]], cache_dir=tmp_path / "cache")
    model = finetune([subject_a], LABELS, tmp_path / "m", config, validation=[], device="cpu", unlabeled=unlabeled)
    recorded = PretrainConfig.from_json(read_card(model).training["contrast"]["config"])
    assert (recorded.method, recorded.spacing, recorded.canvas, recorded.view_size) == ("moco+lrc", 6.0, 64, 64)
    assert recorded.features == SMALL


@pytest.mark.parametrize(
    ("unlabeled", "message"),
    [
        (None, "contrast_weight > 0 needs unlabeled volumes"),
        (Unlabeled([]), "contrast_weight > 0 needs unlabeled volumes"),
        ("other-grid", r"the contrast term's grid \(3.0 mm, 64 px\) is not the fine-tuning's \(6.0 mm, 64 px\)"),
        ("supervised", "needs a self-supervised method"),
    ],
)
def test_the_term_refuses_what_it_cannot_use(subject_a, tmp_path: Path, unlabeled, message):
    if unlabeled == "other-grid":
        unlabeled = Unlabeled([subject_a[0]], small(spacing=3.0))
    elif unlabeled == "supervised":
        unlabeled = Unlabeled([subject_a[0]], small("supervised+lrc"))
    config = replace(TUNE, contrast_weight=1.0)
    with pytest.raises(ValueError, match=message):
        finetune([subject_a], LABELS, tmp_path / "m", config, validation=[], device="cpu", unlabeled=unlabeled)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"contrast_weight": -0.1}, "need contrast_weight >= 0 and contrast_every >= 1"),
        ({"contrast_every": 0}, "contrast_every must be >= 1, got 0"),
        ({"contrast_weight": 1.0, "spatial_dims": 3}, "is 2D only"),
    ],
)
def test_finetune_config_refuses_bad_contrast_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(**changes)
