"""The Pretrainer: the configured objectives on views drawn once, their weighted sum, labels only where needed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lrc.intensity import IntensityWindow
from lrc.io import Volume
from lrc.superpixels import SuperpixelCache, SuperpixelParams
from lrc.train.objectives import Need
from lrc.train.pretrain import SliceSampler
from lrc.train.pretrainer import Pretrainer
from lrc.train.slices import build_slices
from tests.train.recipes import small_pretrain


@pytest.fixture(scope="module")
def batch(subject_a: tuple[Volume, Volume], tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.Tensor, ...]:
    """Four slices of the real CT with their super-pixels and liver/spleen classes, on the 64-pixel canvas."""
    cache = SuperpixelCache(tmp_path_factory.mktemp("superpixels"), SuperpixelParams())
    image, label = subject_a
    slices = build_slices([image], IntensityWindow.for_modality("CT"), 6.0, 64, [label], {5: 1, 1: 2}, cache)
    images, maps, labels = SliceSampler(slices, 4, np.random.default_rng(0)).batch(torch.device("cpu"))
    assert labels is not None
    return images, maps, labels


def test_the_loss_is_the_weighted_sum_of_the_terms(batch):
    images, maps, _ = batch
    config = replace(small_pretrain("moco+lrc"), lambda_local=0.5, decorrelation_weight=2.0, restore_weight=3.0)
    trainer = Pretrainer(config, "cpu")
    assert [o.name for o in trainer.objectives] == ["moco", "lrc", "decorrelation", "restoration"]
    loss, metrics = trainer.objective(images, maps)
    assert set(metrics) == {"global", "local", "regions", "correlation", "restore"}
    parts = metrics["global"] + 0.5 * metrics["local"] + 2.0 * metrics["correlation"] + 3.0 * metrics["restore"]
    assert_allclose(float(loss.detach()), parts, rtol=1e-6)
    step = trainer.step(images, maps)
    assert step["loss"] == pytest.approx(
        step["global"] + 0.5 * step["local"] + 2.0 * step["correlation"] + 3.0 * step["restore"], rel=1e-6
    )


@pytest.mark.parametrize(
    ("method", "changes", "image_head", "needs"),
    [
        ("moco", {}, False, set()),
        ("lrc", {}, False, {Need.DENSE}),
        ("moco", {"restore_weight": 1.0}, True, {Need.DENSE, Need.CLEAN, Need.IMAGE_HEAD}),
        ("supervised+lrc", {}, False, {Need.DENSE, Need.LABELS}),
    ],
)
def test_the_network_has_what_the_objectives_need(method, changes, image_head, needs):
    trainer = Pretrainer(replace(small_pretrain(method), **changes), "cpu", classes=3)
    assert trainer.needs == needs
    assert (trainer.online.restore_head is not None) == image_head


def test_labels_are_used_only_where_an_objective_needs_them(batch):
    images, maps, labels = batch
    runs = [Pretrainer(small_pretrain("moco+lrc"), "cpu").objective(images, maps, given) for given in (None, labels)]
    assert runs[0][1] == runs[1][1]  # the same views, the same terms: the labels were left out
    supervised = Pretrainer(small_pretrain("supervised+lrc"), "cpu", classes=3)
    _, metrics = supervised.objective(images, maps, labels)
    assert set(metrics) == {"local", "regions", "supervised"}
    with pytest.raises(ValueError, match="need label maps"):
        supervised.objective(images, maps)


def test_a_seed_gives_the_same_steps(batch):
    images, maps, _ = batch

    def steps(seed: int) -> list[dict[str, float]]:
        trainer = Pretrainer(small_pretrain("moco+lrc", seed=seed), "cpu")
        return [trainer.step(images, maps) for _ in range(2)]

    first, again, other = steps(4), steps(4), steps(5)
    assert first == again
    assert first[1] != first[0]  # the second step saw other views and moved weights
    assert first != other
