"""A penalty against dimensional collapse: correlation between feature channels.

Contrastive pre-training can squeeze a network's features into a few directions (Jing et al.,
"Understanding Dimensional Collapse in Contrastive Self-supervised Learning", ICLR 2022). VICReg
(Bardes et al., ICLR 2022) counters it with a covariance term that pushes the off-diagonal
covariances of the embeddings to zero. Here the same idea acts on the backbone's own features (the
ones fine-tuning inherits), standardised first so that the penalty is a mean squared correlation in
[0, 1] whatever the features' scale.
"""

from __future__ import annotations

import torch


def channel_correlation(features: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean squared off-diagonal correlation of ``NC`` features (rows are samples, columns channels).

    0 when the channels are uncorrelated, 1 when they are all the same signal (up to sign and
    scale). Constant channels count as uncorrelated with the others.

    Raises:
        ValueError: not 2D, or fewer than 2 samples or 2 channels.
    """
    if features.ndim != 2 or features.shape[0] < 2 or features.shape[1] < 2:
        raise ValueError(f"need NC features with N >= 2 and C >= 2, got {tuple(features.shape)}")
    x = features.float()
    x = x - x.mean(dim=0)
    x = x / (x.pow(2).mean(dim=0) + eps).sqrt()  # N x C, unit variance per channel (eps: on the variance)
    correlation = x.T @ x / x.shape[0]  # C x C
    channels = correlation.shape[0]
    off = correlation - torch.diag_embed(torch.diagonal(correlation))
    return off.pow(2).sum() / (channels * (channels - 1))
