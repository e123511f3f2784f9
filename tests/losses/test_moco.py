"""MoCo v2 pieces: InfoNCE, the queue, the momentum update."""

from __future__ import annotations

import math

import pytest
import torch
from numpy.testing import assert_allclose

from lrc.losses import MoCoQueue, info_nce
from lrc.losses.moco import momentum_update


def test_info_nce_by_hand():
    query = torch.tensor([[1.0, 0.0]])
    key = torch.tensor([[1.0, 0.0]])
    negatives = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    # logits 1, 0, -1 with the positive first
    expected = math.log(math.e + 1 + 1 / math.e) - 1
    assert_allclose(float(info_nce(query, key, negatives, temperature=1.0)), expected, rtol=1e-6)
    # temperature 0.5 doubles the logits
    expected_half = math.log(math.exp(2) + 1 + math.exp(-2)) - 2
    assert_allclose(float(info_nce(query, key, negatives, temperature=0.5)), expected_half, rtol=1e-6)


def test_info_nce_shape_error():
    with pytest.raises(ValueError, match=r"\(2, 3\), \(2, 3\), \(5, 4\)"):
        info_nce(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(5, 4))


def test_queue_is_fifo_and_wraps():
    queue = MoCoQueue(dim=2, size=5)
    first = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    queue.push(first)
    assert torch.equal(queue.keys[:3], first)
    second = torch.full((3, 2), 9.0)
    queue.push(second)  # fills slots 3, 4 and wraps to 0
    assert torch.equal(queue.keys[3:], second[:2])
    assert torch.equal(queue.keys[0], second[2])
    assert int(queue.pointer) == 1


def test_momentum_update():
    online, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = target.weight.detach().clone()
    momentum_update(online, target, momentum=0.9)
    assert torch.allclose(target.weight, 0.9 * before + 0.1 * online.weight)
