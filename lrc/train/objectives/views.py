"""Drawing the two views of a pre-training batch in the form the configured objectives need.

Three forms (:mod:`lrc.views` for the transforms): plain views (geometry, then intensity changes);
with :attr:`~lrc.train.objectives.base.Need.LABELS`, the label maps travel with the super-pixels
through the same geometry; with :attr:`~lrc.train.objectives.base.Need.CLEAN`, the views are kept
before their intensity changes and a share of their cells is hidden after them.
"""

from __future__ import annotations

from collections.abc import Set
from typing import TYPE_CHECKING

import torch

from lrc.train.objectives.base import Need, Views
from lrc.views import geometric_views, intensity, make_views, mask_cells

if TYPE_CHECKING:
    from lrc.train.pretrain_config import PretrainConfig

LABEL_SHIFT = 256  # labels ride in the low byte of the super-pixel map through the geometry


def check_needs(needs: Set[Need]) -> None:
    """Refuse needs no single drawing gives.

    Raises:
        ValueError: both labels and clean views.
    """
    if Need.LABELS in needs and Need.CLEAN in needs:
        raise ValueError("no pre-training objectives combine labels with clean (restoration) views")


def draw_views(
    images: torch.Tensor,
    maps: torch.Tensor,
    labels: torch.Tensor | None,
    needs: Set[Need],
    config: PretrainConfig,
    generator: torch.Generator,
) -> Views:
    """Two views of ``B1S..`` images with their ``BS..`` super-pixel maps (and ``BS..`` labels).

    Raises:
        ValueError: labels are needed and none are given, or ``needs`` fails :func:`check_needs`.
    """
    check_needs(needs)
    size = config.view_size if config.spatial_dims == 2 else (config.view_size, config.view_size, config.view_depth)
    if Need.LABELS in needs:
        if labels is None:
            raise ValueError("the configured objectives need label maps and the batch has none")
        view_1, view_2, map_1, map_2 = make_views(images, maps * LABEL_SHIFT + labels, size, config.views, generator)
        target = (map_1 % LABEL_SHIFT)[:, None]  # B x 1 x S x S
        return Views(view_1, view_2, map_1 // LABEL_SHIFT, map_2 // LABEL_SHIFT, target=target)
    if Need.CLEAN in needs:
        clean_1, clean_2, map_1, map_2 = geometric_views(images, maps, size, config.views, generator)
        view_1, view_2 = (
            mask_cells(intensity(clean, config.views, generator), config.restore_mask, generator=generator)
            for clean in (clean_1, clean_2)
        )
        return Views(view_1, view_2, map_1, map_2, clean=torch.cat([clean_1, clean_2]))  # clean: 2B x 1 x S..
    view_1, view_2, map_1, map_2 = make_views(images, maps, size, config.views, generator)
    return Views(view_1, view_2, map_1, map_2)
