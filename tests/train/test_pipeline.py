"""Pre-train -> fine-tune -> segment on the real CT data, small and on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lrc.infer import Predictor
from lrc.io import Volume
from lrc.model_dirs.store import read_card
from lrc.train.finetune import finetune
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.pretrain import pretrain
from tests.train.recipes import LABELS, SMALL, small_pretrain


def test_finetune_and_segment(pretrained: Path, subject_a, subject_c, tmp_path: Path):
    config = FinetuneConfig(steps=6, batch_size=4, patch=48, validate_every=3, seed=0)
    model = finetune(
        [subject_a], LABELS, tmp_path / "seg", config, validation=[subject_c], init=pretrained, device="cpu"
    )
    card = read_card(model)
    assert card.kind == "segmentation"
    assert card.parent is not None
    assert card.parent["weights_sha256"] == read_card(pretrained).weights_sha256
    assert card.spacing == (6.0, 6.0, None)  # inherited from the pre-trained model
    assert card.metrics is not None
    assert set(card.metrics["dice"]) == {"liver", "spleen"}
    assert 0.0 <= card.metrics["mean_dice"] <= 1.0
    assert card.training["split"]["validation"]
    assert card.training["split"]["train"]
    assert card.training["best_step"] in (3, 6)
    assert json.loads((model / "model.json").read_text())["labels"]["5"]["type"][1] == "10200004"

    image, _ = subject_c
    labels = Predictor.from_dir(model, device="cpu").predict(image)
    assert labels.shape == image.shape
    assert_allclose(labels.affine, image.affine)
    assert labels.source is image.source
    assert set(np.unique(labels.array)) <= {0, 1, 5}


def test_predictor_keeps_any_orientation(pretrained: Path, subject_a, tmp_path: Path):
    config = FinetuneConfig(steps=2, batch_size=2, patch=48, validate_every=100)
    model = finetune([subject_a], LABELS, tmp_path / "seg", config, validation=[], init=pretrained, device="cpu")
    predictor = Predictor.from_dir(model, device="cpu")
    image = subject_a[0]
    flipped = Volume(
        image.array[::-1, :, ::-1].copy(),
        image.affine
        @ np.array([[-1, 0, 0, image.shape[0] - 1], [0, 1, 0, 0], [0, 0, -1, image.shape[2] - 1], [0, 0, 0, 1.0]]),
        "CT",
    )
    direct = predictor.predict(image)
    via_flip = predictor.predict(flipped)
    assert_allclose(via_flip.affine, flipped.affine)
    assert np.array_equal(via_flip.array[::-1, :, ::-1], direct.array)  # same world, same answer


def test_finetune_3d_and_predict(subject_a, subject_c, tmp_path: Path):
    config = FinetuneConfig(
        steps=3,
        batch_size=2,
        patch=32,
        patch_depth=16,
        spacing=6.0,
        canvas=64,
        spatial_dims=3,
        features=SMALL,
        validate_every=3,
    )
    model = finetune([subject_a], LABELS, tmp_path / "seg3d", config, validation=[subject_c], device="cpu")
    card = read_card(model)
    assert card.arguments["spatial_dims"] == 3
    assert card.spacing == (6.0, 6.0, 6.0)
    assert card.training["patch"] == [32, 32, 16]
    assert card.metrics is not None
    image = subject_c[0]
    labels = Predictor.from_dir(model, device="cpu").predict(image)  # sliding window over the volume
    assert labels.shape == image.shape
    assert_allclose(labels.affine, image.affine)


def test_3d_finetune_refuses_2dweights(pretrained: Path, subject_a, tmp_path: Path):
    config = FinetuneConfig(steps=1, patch=32, patch_depth=16, canvas=64, spatial_dims=3)
    with pytest.raises(ValueError, match="2D network; this fine-tuning is 3D"):
        finetune([subject_a], LABELS, tmp_path / "x", config, validation=[], init=pretrained, device="cpu")


def test_3d_pretrain_then_3d_finetune(subject_a, subject_c, tmp_path: Path):
    config = small_pretrain("moco+lrc")
    config.spatial_dims, config.spacing_z, config.depth, config.view_depth, config.batch_size = 3, 6.0, 24, 16, 2
    config.view_size = 32
    pretrained = pretrain([subject_a[0]], tmp_path / "pre3d", config, device="cpu", cache_dir=tmp_path / "cache")
    card = read_card(pretrained)
    assert card.arguments["spatial_dims"] == 3
    assert card.spacing == (6.0, 6.0, 6.0)
    assert card.training["final"]["regions"] > 0  # regions were found in the 3D views
    assert np.isfinite(card.training["final"]["local"])
    tune = FinetuneConfig(steps=2, batch_size=2, patch=32, patch_depth=16, spatial_dims=3, validate_every=2)
    model = finetune(
        [subject_a], LABELS, tmp_path / "seg3d", tune, validation=[subject_c], init=pretrained, device="cpu"
    )
    tuned = read_card(model)
    assert tuned.spacing == (6.0, 6.0, 6.0)  # the pre-trained grid, depth included
    assert tuned.parent is not None
    assert tuned.parent["weights_sha256"] == card.weights_sha256
    with pytest.raises(ValueError, match="3D network; this fine-tuning is 2D"):
        finetune(
            [subject_a], LABELS, tmp_path / "x", FinetuneConfig(steps=1), validation=[], init=pretrained, device="cpu"
        )
