"""Pre-training end to end: the card, the methods and their terms, the settings refused (real CT, CPU)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from numpy.testing import assert_allclose

from lrc.model_dirs.store import load_model, read_card
from lrc.superpixels import SuperpixelParams
from lrc.train.pretrain import PretrainConfig, pretrain
from lrc.views import ViewConfig
from tests.train.recipes import SMALL, small_pretrain


def test_pretrain_config_round_trips_through_json():
    config = replace(
        small_pretrain("lrc"),
        views=ViewConfig(crop_scale=(0.5, 0.9), independent_geometry=True, gamma=(0.8, 1.2)),
        superpixels=SuperpixelParams(scale=200.0, min_size=20),
    )
    assert PretrainConfig.from_json(config.to_json()) == config


def test_pretrained_card(pretrained: Path, subject_a):
    card = read_card(pretrained)
    assert card.kind == "pretrained"
    assert card.training["method"] == "moco+lrc"
    assert card.training["steps"] == 3
    assert card.training["seeds"] == {"torch": 0, "numpy": 0}
    assert set(card.training["final"]) >= {"global", "local", "loss"}
    assert card.arguments["features"] == list(SMALL)
    assert card.spacing == (6.0, 6.0, None)
    assert len(card.training["data"]) == 1


def test_pretraining_is_deterministic_under_a_seed(subject_a, tmp_path: Path):
    cache = tmp_path / "cache"
    runs = [
        pretrain([subject_a[0]], tmp_path / f"m{k}", small_pretrain("lrc", seed), device="cpu", cache_dir=cache)
        for k, seed in enumerate((7, 7, 8))
    ]
    hashes = [read_card(r).weights_sha256 for r in runs]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


def test_method_checks():
    with pytest.raises(ValueError, match="method must be one of"):
        PretrainConfig(method="simclr")
    with pytest.raises(ValueError, match="multiples of 16"):
        PretrainConfig(view_size=100)
    for momentum in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
            PretrainConfig(momentum=momentum)


def test_supervised_plus_lrc(subject_a, tmp_path: Path):
    config = small_pretrain("supervised+lrc")
    model = pretrain(
        [subject_a[0]],
        tmp_path / "sup",
        config,
        device="cpu",
        cache_dir=tmp_path / "cache",
        labels=[subject_a[1]],
        class_of={5: 1, 1: 2},
    )
    card = read_card(model)
    assert card.training["method"] == "supervised+lrc"
    assert set(card.training["final"]) >= {"supervised", "local"}
    assert card.arguments["out_channels"] == 3
    with pytest.raises(ValueError, match="needs label maps"):
        pretrain([subject_a[0]], tmp_path / "x", config, device="cpu")


def test_3d_supervised_lrc_is_refused():
    with pytest.raises(ValueError, match="2D only"):
        PretrainConfig(method="supervised+lrc", spatial_dims=3)


@pytest.mark.parametrize("method", ["moco", "moco+lrc"])
def test_decorrelation_penalty_joins_the_loss(subject_a, tmp_path: Path, method: str):
    config = replace(small_pretrain(method, steps=2), decorrelation_weight=2.0)
    model = pretrain([subject_a[0]], tmp_path / "m", config, device="cpu", cache_dir=tmp_path / "cache")
    final = read_card(model).training["final"]
    assert 0.0 <= final["correlation"] <= 1.0
    parts = final["global"] + final.get("local", 0.0) + 2.0 * final["correlation"]
    assert_allclose(final["loss"], parts, rtol=1e-4)
    with pytest.raises(ValueError, match="decorrelation_weight"):
        replace(config, decorrelation_weight=-1.0)


def test_fewer_negatives_change_the_local_loss_only(subject_a, tmp_path: Path):
    # same seed, same views and regions: the global loss of the first step is the same, the local one is not
    finals = {}
    variants = {"batch": {}, "image": {"local_negatives": "image"}, "margin": {"negative_margin": 0.05}}
    for name, change in variants.items():
        config = replace(small_pretrain("moco+lrc", steps=1), **change)
        model = pretrain([subject_a[0]], tmp_path / name, config, device="cpu", cache_dir=tmp_path / "cache")
        card = read_card(model)
        assert {k: card.training["config"][k] for k in change} == change
        finals[name] = card.training["final"]
    for name in ("image", "margin"):
        assert_allclose(finals["batch"]["global"], finals[name]["global"], rtol=1e-6)
        assert finals[name]["local"] < finals["batch"]["local"]  # fewer negatives in each softmax
    with pytest.raises(ValueError, match="local_negatives must be one of"):
        replace(config, local_negatives="volume")
    with pytest.raises(ValueError, match="negative_margin must be >= 0"):
        replace(config, negative_margin=-0.1)


@pytest.mark.parametrize("method", ["moco", "lrc"])
def test_restoration_joins_the_loss_and_its_head_is_not_saved(subject_a, tmp_path: Path, method: str):
    config = replace(small_pretrain(method, steps=2), restore_weight=3.0)
    model = pretrain([subject_a[0]], tmp_path / "m", config, device="cpu", cache_dir=tmp_path / "cache")
    final = read_card(model).training["final"]
    assert 0.0 < final["restore"] < 1.0  # mean squared error of [0, 1] images
    parts = final.get("global", 0.0) + final.get("local", 0.0) + 3.0 * final["restore"]
    assert_allclose(final["loss"], parts, rtol=1e-4)
    net, _ = load_model(model)
    assert not any("restore" in name for name in net.state_dict())  # a plain backbone, as without restoration
    for bad, message in (
        ({"restore_weight": -1.0}, "restore_weight >= 0"),
        ({"restore_mask": 1.0}, "restore_mask in"),
        ({"method": "supervised+lrc"}, "restoration is not combined"),
    ):
        with pytest.raises(ValueError, match=message):
            replace(config, **bad)
