"""The fine-tuning loop: the cosine schedule with its warm-up, L2-SP anchors, the best weights kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lrc.model_dirs.store import read_card
from lrc.nets.unet import UNet
from lrc.train.finetune import finetune
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.finetune_loop import Best, copy_state, cosine_schedule, pull_towards
from tests.train.recipes import DECODER, ENCODER, LABELS, SMALL, weights


@pytest.mark.parametrize(
    ("step", "start", "expected"),
    [(0, 0, 1.0), (50, 0, 0.5), (100, 0, 0.0), (0, 20, 0.0), (19, 20, 0.0), (20, 20, 1.0), (60, 20, 0.5)],
)
def test_cosine_schedule_with_warmup(step: int, start: int, expected: float):
    assert_allclose(cosine_schedule(step, 100, start), expected, atol=1e-12)


def test_anchor_weight_holds_transferred_layers_near_their_pretrained_values(
    pretrained: Path, subject_a, tmp_path: Path
):
    """L2-SP as a decoupled decay: at rate x weight = 1 a step ends on the pre-trained values; at 0.5 the
    layers end nearer them than without the anchor (same seed, same batches)."""
    base = FinetuneConfig(steps=3, batch_size=2, patch=48, lr=1e-3, backbone_lr_factor=1.0)

    def distance(name: str, **changes: object) -> tuple[float, dict[str, np.ndarray]]:
        run = finetune([subject_a], LABELS, tmp_path / name, replace(base, **changes), validation=[], init=pretrained)
        after = weights(run, ENCODER + DECODER)
        names = [n for n in before if not n.endswith(("running_mean", "running_var"))]
        return sum(float(np.sum((after[n] - before[n]) ** 2)) for n in names), after

    before = weights(pretrained, ENCODER + DECODER)
    plain, _ = distance("plain")
    held, _ = distance("held", anchor_weight=500.0)  # the first step's rate 1e-3: lerp 0.5
    assert 0 < held < plain
    _, pinned = distance("pinned", steps=1, anchor_weight=1000.0)
    for name, value in before.items():
        assert_allclose(pinned[name], value, rtol=1e-6, atol=1e-8)
    assert read_card(tmp_path / "held").training["config"]["anchor_weight"] == 500.0
    with pytest.raises(ValueError, match="exceeds 1"):
        replace(base, anchor_weight=2000.0)
    with pytest.raises(ValueError, match="exceeds 1"):  # the default factor counts at 3 (a self-supervised base)
        FinetuneConfig(lr=1e-3, anchor_weight=400.0)
    with pytest.raises(ValueError, match="anchor_weight must be >= 0"):
        FinetuneConfig(anchor_weight=-1.0)


def test_the_best_weights_are_kept_until_a_validation_beats_them():
    torch.manual_seed(0)
    net = UNet(2, 1, 2, SMALL)
    best = Best(copy_state(net))
    assert (best.score, best.step, best.metrics) == (-1.0, 0, None)
    first = {"mean_dice": 0.5}
    best.offer(1, first, net)
    kept = copy_state(net)
    with torch.no_grad():
        net.final_conv.bias.add_(1.0)
    best.offer(2, {"mean_dice": 0.4}, net)
    best.offer(3, {"mean_dice": None}, net)  # no structure scored: no gain either
    assert (best.score, best.step, best.metrics, best.waited) == (0.5, 1, first, 2)
    assert all(torch.equal(best.state[k], kept[k]) for k in kept)
    best.offer(4, {"mean_dice": 0.6}, net)
    assert (best.step, best.waited) == (4, 0)
    assert torch.equal(best.state["final_conv.bias"], net.final_conv.bias.detach())


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 3.0), (0.25, 2.5), (1.0, 1.0)])
def test_pull_towards_moves_a_share_of_the_way(rate, expected):
    param = torch.full((2,), 3.0)
    pull_towards([param], [torch.ones(2)], rate)
    assert_allclose(param.numpy(), expected)
