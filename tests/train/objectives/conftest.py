"""Fixtures of the objective tests: a small online network with identity heads, and batches built by hand."""

from __future__ import annotations

import pytest
import torch

from lrc.nets.unet import ContrastiveUNet, UNet
from lrc.train.objectives import Batch, Views
from lrc.train.pretrain import PretrainConfig
from tests.train.recipes import SMALL

DIM = 8  # embedding size, the last decoder stage's width in SMALL too: identity heads fit


def config(**changes: object) -> PretrainConfig:
    """Small settings with ``DIM``-sized embeddings."""
    settings: dict = {"canvas": 64, "view_size": 32, "features": SMALL, "embedding_dim": DIM, "queue_size": 16}
    return PretrainConfig(**settings | changes)


@pytest.fixture
def online() -> ContrastiveUNet:
    """A seeded 2D network of ``SMALL`` features with its heads, the image head included."""
    torch.manual_seed(0)
    return ContrastiveUNet(UNet(2, 1, 3, SMALL), DIM, restore=True)


def identity_local_head(online: ContrastiveUNet) -> None:
    """Make the local head ``normalize(relu(x))``: one-hot features become one-hot embeddings."""
    first, _, second = online.local_head
    with torch.no_grad():
        for layer in (first, second):
            layer.weight.copy_(torch.eye(DIM))
            layer.bias.zero_()


def batch_of(views: Views, online: ContrastiveUNet, dense: torch.Tensor | None = None, seed: int = 0) -> Batch:
    """The batch of ``views`` with the online network's global embeddings (and the given dense features)."""
    both = torch.cat([views.first, views.second])  # 2B x 1 x S x S
    query, _ = online(both, local=False)  # 2B x E
    return Batch(views, both, query, dense, torch.Generator().manual_seed(seed))


def stripes(batch: int, side: int, regions: int) -> torch.Tensor:
    """``BSS`` super-pixel maps: ``regions`` vertical stripes per image, ids distinct across images (from 1)."""
    column = torch.arange(side) * regions // side  # S: stripe of each column
    maps = column.expand(batch, side, side) + 1  # B x S x S
    return maps + regions * torch.arange(batch)[:, None, None]
