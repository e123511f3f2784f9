"""Contrastive sampling of super-pixel regions: K regions per image, M pixels per region, per view.

The sampling is vectorised over the whole batch (one sort and a few gathers, no Python loop over
images, regions or pixels), so that an LRC step costs about what a MoCo step costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RegionSample:
    """Sampled pixels of both views.

    Attributes:
        index_1: ``BKM`` flat pixel indices into view 1 (``H*W``).
        index_2: ``BKM`` flat pixel indices into view 2.
        valid: ``BK`` True where image ``b`` had a ``k``-th region to sample.
        region: ``BK`` the super-pixel id sampled.
    """

    index_1: torch.Tensor
    index_2: torch.Tensor
    valid: torch.Tensor
    region: torch.Tensor


def _grouped_pixels(
    maps: torch.Tensor, regions: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels sorted by (image, region) in random order within each region.

    Returns the sorted flat pixel indices (``B*P``), per-(image, region) counts and start offsets
    (``B*R`` each), where region ids are offset by ``b * regions``.
    """
    batch, pixels = maps.shape  # B x P
    ids = (maps + torch.arange(batch, device=maps.device)[:, None] * regions).reshape(-1)  # B*P
    jitter = torch.rand(ids.shape, device=maps.device, generator=generator)  # random order inside a region
    order = torch.argsort(ids.double() + jitter.double())  # B*P
    counts = torch.bincount(ids, minlength=batch * regions)  # B*R
    starts = torch.cumsum(counts, 0) - counts  # B*R
    return order % pixels, counts, starts


def sample_regions(
    map_1: torch.Tensor,
    map_2: torch.Tensor,
    regions_per_image: int = 16,
    pixels_per_region: int = 8,
    generator: torch.Generator | None = None,
) -> RegionSample:
    """Sample ``K`` regions present in both views with at least ``M`` pixels in each, and ``M`` pixels.

    Args:
        map_1: ``BHW`` (or ``BHWD``) super-pixel ids of view 1, 0 = not a region.
        map_2: the same for view 2 (same ids: the views are transforms of one map).
        regions_per_image: ``K``.
        pixels_per_region: ``M``.
        generator: random generator (on the maps' device) for reproducible sampling.

    Returns:
        Indices into the flattened spatial dimensions of each view, and which samples are valid.

    Raises:
        ValueError: the maps differ in batch size or are not integer.
    """
    if map_1.shape[0] != map_2.shape[0] or map_1.dtype.is_floating_point or map_2.dtype.is_floating_point:
        raise ValueError(
            f"region maps must be integer with one batch size, got {tuple(map_1.shape)} "
            f"{map_1.dtype} and {tuple(map_2.shape)} {map_2.dtype}"
        )
    batch = map_1.shape[0]
    flat_1 = map_1.reshape(batch, -1).long()  # B x P1
    flat_2 = map_2.reshape(batch, -1).long()  # B x P2
    regions = int(max(flat_1.max().item(), flat_2.max().item())) + 1  # R (id 0 included, never sampled)
    order_1, counts_1, starts_1 = _grouped_pixels(flat_1, regions, generator)
    order_2, counts_2, starts_2 = _grouped_pixels(flat_2, regions, generator)
    eligible = (counts_1 >= pixels_per_region) & (counts_2 >= pixels_per_region)  # B*R
    eligible = eligible.reshape(batch, regions)
    eligible[:, 0] = False
    score = torch.rand(eligible.shape, device=map_1.device, generator=generator)  # B x R
    score = torch.where(eligible, score, torch.full_like(score, -1.0))
    k = min(regions_per_image, regions)
    top, region = torch.topk(score, k, dim=1)  # B x K
    valid = top >= 0  # B x K
    slot = (region + torch.arange(batch, device=map_1.device)[:, None] * regions).reshape(-1)  # B*K
    offsets = torch.arange(pixels_per_region, device=map_1.device)  # M
    pick_1 = (starts_1[slot][:, None] + offsets).clamp(max=order_1.numel() - 1)  # B*K x M
    pick_2 = (starts_2[slot][:, None] + offsets).clamp(max=order_2.numel() - 1)  # B*K x M
    shape = (batch, k, pixels_per_region)
    return RegionSample(order_1[pick_1].reshape(shape), order_2[pick_2].reshape(shape), valid, region)
