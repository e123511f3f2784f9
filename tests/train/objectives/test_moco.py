"""The MoCo objective: InfoNCE by hand on identical views, the queue it feeds, the key encoder it moves."""

from __future__ import annotations

import math

import torch
from numpy.testing import assert_allclose

from lrc.train.objectives import Views
from lrc.train.objectives.moco import MoCoObjective
from tests.train.objectives.conftest import batch_of, config, stripes


def test_identical_views_give_the_infonce_of_a_perfect_positive(online):
    temperature = 0.2
    objective = MoCoObjective(config(method="moco", temperature_global=temperature, momentum=0.5), online)
    image = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = stripes(2, 32, 3)
    batch = batch_of(Views(image, image, maps, maps), online)
    negatives = objective.queue.keys.clone()  # K x E
    value, extra = objective.loss(batch)
    # the key encoder is the online network's copy: each view's key is the other's query, q.k = 1
    query = batch.query[:2].detach()  # B x E
    by_hand = [
        -1 / temperature + math.log(math.exp(1 / temperature) + float(torch.exp(q @ negatives.T / temperature).sum()))
        for q in query
    ]
    assert_allclose(float(value.detach()), sum(by_hand) / 2, rtol=1e-5)
    assert extra == {}
    assert value.requires_grad  # through the queries, not the keys
    assert not any(p.requires_grad for p in objective.key.parameters())


def test_the_first_views_keys_join_the_queue(online):
    objective = MoCoObjective(config(method="moco"), online)
    first, second = (torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    maps = stripes(4, 32, 3)
    batch = batch_of(Views(first, second, maps, maps), online)
    kept = objective.queue.keys[4:].clone()
    objective.loss(batch)
    keys, _ = objective.key(first, local=False)  # B x E: the key encoder on the first view
    assert_allclose(objective.queue.keys[:4].numpy(), keys.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert torch.equal(objective.queue.keys[4:], kept)
    assert int(objective.queue.pointer) == 4


def test_the_key_encoder_follows_the_online_network_at_the_momentum(online):
    objective = MoCoObjective(config(method="moco", momentum=0.75), online)
    with torch.no_grad():
        online.global_head[0].weight.add_(1.0)
    before = objective.key.global_head[0].weight.clone()
    image = torch.rand(2, 1, 32, 32)
    maps = stripes(2, 32, 3)
    objective.loss(batch_of(Views(image, image, maps, maps), online))
    expected = 0.75 * before + 0.25 * online.global_head[0].weight.detach()
    assert_allclose(objective.key.global_head[0].weight.numpy(), expected.numpy(), rtol=1e-6)
