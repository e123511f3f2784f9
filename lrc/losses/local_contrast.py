"""The LRC local loss: supervised-contrastive loss with super-pixel identity as the label.

Yan et al., "Localized Region Contrast for Enhancing Self-Supervised Learning in Medical Image
Segmentation", MICCAI 2023 (arXiv 2304.03406); the loss form is Khosla et al., "Supervised
Contrastive Learning", NeurIPS 2020 (their L_out). Pixel embeddings sampled from the same
super-pixel of the same image, in either view, are positives of each other; the negatives are all
other sampled embeddings of the batch (``negatives="batch"``, the specification) or only those of
the same image (``"image"``). Across images, regions of the same organ are negatives of each
other, so the batch form teaches features to tell one patient's liver from another's; the image
form keeps only the contrasts inside one slice, where an over-segmented organ still gives
negatives of itself. ``margin`` leaves such false negatives out of the softmax: two regions whose
mean intensities differ by less than it (CT numbers are calibrated: the same tissue, most likely)
are neither positives nor negatives of each other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lrc.losses.region_sampling import RegionSample
from lrc.train.pretrain_config import NEGATIVES


class LocalRegionContrastLoss(nn.Module):
    """Supervised-contrastive loss over sampled pixel embeddings.

    Args:
        temperature: softmax temperature (0.1 in our specification).
        negatives: ``batch`` (every other sampled embedding) or ``image`` (those of the same image).
        margin: regions whose mean intensities differ by less than this are no negatives of each
            other (0: off, the specification); needs the regions' intensities.

    Raises:
        ValueError: a temperature that is not positive, unknown negatives, a negative margin.
    """

    def __init__(self, temperature: float = 0.1, negatives: str = "batch", margin: float = 0.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.temperature = temperature
        self.negatives = negatives
        self.margin = margin

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        groups: torch.Tensor | None = None,
        intensity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of ``ND`` unit embeddings with ``N`` integer labels (same label = positive pair).

        With ``groups`` (``N`` integers), embeddings of different groups are left out of each
        other's softmax: neither positives nor negatives. With ``intensity`` (``N``, the mean
        intensity of each embedding's region) and a ``margin``, embeddings of other labels closer
        than it are left out too. Anchors without any positive are left out of the mean; a batch
        with none returns 0 (connected to the graph, so that a step still runs).

        Raises:
            ValueError: shapes do not match (the message prints them).
        """
        if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
            shapes = f"{tuple(embeddings.shape)} and {tuple(labels.shape)}"
            raise ValueError(f"need embeddings ND and labels N, got {shapes}")
        if groups is not None and groups.shape != labels.shape:
            raise ValueError(f"need groups N like labels, got {tuple(groups.shape)} and {tuple(labels.shape)}")
        logits = (embeddings @ embeddings.T).float() / self.temperature  # N x N
        excluded = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)  # N x N: self pairs
        if groups is not None:
            excluded = excluded | (groups[:, None] != groups[None, :])  # N x N: out of the softmax
        if intensity is not None and self.margin > 0:
            alike = (intensity[:, None] - intensity[None, :]).abs() < self.margin  # N x N
            excluded = excluded | (alike & (labels[:, None] != labels[None, :]))  # false negatives out
        logits = logits.masked_fill(excluded, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # N x N, softmax over a != i
        positive = (labels[:, None] == labels[None, :]) & ~excluded  # N x N
        count = positive.sum(dim=1)  # N
        anchors = count > 0
        if not bool(anchors.any()):
            return embeddings.sum() * 0.0
        mean_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)[anchors] / count[anchors]
        return -mean_log_prob.mean()

    def from_views(
        self,
        dense_1: torch.Tensor,
        dense_2: torch.Tensor,
        sample: RegionSample,
        project: Callable[[torch.Tensor], torch.Tensor] | None = None,
        views: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Loss of the sampled pixels of two views' dense maps (``BCHW[D]`` each).

        Args:
            dense_1, dense_2: per-pixel features (or embeddings) of the two views.
            sample: the pixels to use (:func:`lrc.losses.region_sampling.sample_regions`).
            project: maps the gathered ``NC`` features to ``ND`` embeddings (the local head);
                without it the gathered vectors are only L2-normalised.
            views: the two views' images (``B1HW[D]``): a region's intensity is the mean of its
                sampled pixels in both, for ``margin`` (ignored without one).
        """
        batch, dim = dense_1.shape[:2]
        flat_1 = dense_1.reshape(batch, dim, -1)  # B x D x P
        flat_2 = dense_2.reshape(batch, dim, -1)  # B x D x P
        k, m = sample.index_1.shape[1:]
        pick_1 = torch.gather(flat_1, 2, sample.index_1.reshape(batch, 1, k * m).expand(-1, dim, -1))  # B x D x KM
        pick_2 = torch.gather(flat_2, 2, sample.index_2.reshape(batch, 1, k * m).expand(-1, dim, -1))  # B x D x KM
        both = torch.cat([pick_1, pick_2], dim=2).permute(0, 2, 1)  # B x 2KM x D
        ids = torch.arange(batch * k, device=dense_1.device).reshape(batch, k, 1).expand(batch, k, m)  # B x K x M
        ids = ids.reshape(batch, k * m).repeat(1, 2)  # B x 2KM, laid out like `both`: one id per (image, region)
        keep = sample.valid.repeat_interleave(m, dim=1).repeat(1, 2)  # B x 2KM
        chosen = both[keep]  # N x C
        embeddings = project(chosen) if project is not None else nn.functional.normalize(chosen, dim=1)
        groups = ids[keep] // k if self.negatives == "image" else None  # image of each embedding
        intensity = None
        if views is not None and self.margin > 0:
            values = [
                torch.gather(view.reshape(batch, -1), 1, index.reshape(batch, k * m)).reshape(batch, k, m)
                for view, index in zip(views, (sample.index_1, sample.index_2), strict=True)
            ]  # B x K x M each
            means = torch.cat(values, dim=2).float().mean(dim=2)  # B x K: per region, both views
            intensity = means.repeat_interleave(m, dim=1).repeat(1, 2)[keep]  # N, laid out like `ids`
        return self(embeddings, ids[keep], groups, intensity)
