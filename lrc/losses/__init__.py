"""Losses: MoCo v2 global contrast, LRC local region contrast, their sampling, and a decorrelation penalty."""

from lrc.losses.decorrelation import channel_correlation
from lrc.losses.local_contrast import LocalRegionContrastLoss
from lrc.losses.moco import MoCoQueue, info_nce
from lrc.losses.region_sampling import RegionSample, sample_regions

__all__ = [
    "LocalRegionContrastLoss",
    "MoCoQueue",
    "RegionSample",
    "channel_correlation",
    "info_nce",
    "sample_regions",
]
