"""MoCo v2 global contrast: InfoNCE against a queue of negatives.

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020;
Chen et al., "Improved Baselines with Momentum Contrastive Learning" (MoCo v2), arXiv 2003.04297.
The key encoder is a momentum copy of the query encoder (see :func:`momentum_update`).
"""

from __future__ import annotations

import torch
from torch import nn


def info_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """InfoNCE of unit queries against their positive keys and a bank of negatives.

    Args:
        query: ``ND`` unit vectors.
        key: ``ND`` unit vectors, ``key[n]`` the positive of ``query[n]`` (no gradient needed).
        negatives: ``KD`` unit vectors.
        temperature: softmax temperature.

    Returns:
        Mean over ``N`` of ``-log(exp(q.k/t) / (exp(q.k/t) + sum_j exp(q.n_j/t)))``.

    Raises:
        ValueError: shapes do not match (the message prints them).
    """
    if query.ndim != 2 or query.shape != key.shape or negatives.ndim != 2 or negatives.shape[1] != query.shape[1]:
        raise ValueError(
            f"info_nce needs query ND, key ND, negatives KD; got {tuple(query.shape)}, "
            f"{tuple(key.shape)}, {tuple(negatives.shape)}"
        )
    positive = (query * key).sum(dim=1, keepdim=True)  # positive logits: N x 1
    negative = query @ negatives.T  # negative logits: N x K
    logits = torch.cat([positive, negative], dim=1) / temperature  # N x (1 + K)
    target = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)  # positives are column 0
    return nn.functional.cross_entropy(logits.float(), target)


class MoCoQueue(nn.Module):
    """A FIFO queue of key embeddings used as MoCo negatives.

    Args:
        dim: embedding size.
        size: number of keys kept (MoCo: 65536 on ImageNet; a few thousand suit a hospital cohort).
    """

    def __init__(self, dim: int = 128, size: int = 4096) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be positive, got {size} and {dim}")
        self.register_buffer("keys", nn.functional.normalize(torch.randn(size, dim), dim=1))  # K x D
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.keys: torch.Tensor
        self.pointer: torch.Tensor

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Replace the oldest entries with ``keys`` (``ND``), wrapping around."""
        size = self.keys.shape[0]
        index = (self.pointer + torch.arange(keys.shape[0], device=keys.device)) % size  # N
        self.keys[index] = keys.detach().to(self.keys.dtype)
        self.pointer.copy_((self.pointer + keys.shape[0]) % size)


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, momentum: float = 0.999) -> None:
    """``target = momentum * target + (1 - momentum) * online``, parameter by parameter."""
    online_params: list[torch.Tensor] = list(online.parameters())
    target_params: list[torch.Tensor] = list(target.parameters())
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)
    for online_buffer, target_buffer in zip(online.buffers(), target.buffers(), strict=True):
        target_buffer.copy_(online_buffer)
