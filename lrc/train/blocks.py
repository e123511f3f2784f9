"""3D pre-training data: volumes on the model grid with their super-pixels, and random blocks of them.

Super-pixels stay 2D (Felzenszwalb on each axial slice of the resampled volume, from the same
cache as 2D pre-training): each slice's regions get ids of their own, so that a region of a 3D
block is a region of one slice. True 3D super-voxels would cost a 3D graph segmentation per
volume and could not reuse the per-slice cache; the local loss only needs regions whose pixels
belong together, which per-slice regions are.

Each block's ids are renumbered 1..R before the loss (0 stays background), so the sampler's
per-region tables stay as small as in 2D whatever the volume's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lrc.intensity import IntensityWindow
from lrc.io.volume import Volume
from lrc.superpixels import SuperpixelCache
from lrc.train.slices import Preparing, center_on_canvas, prepared_share, to_model_grid


@dataclass
class RegionVolume:
    """One volume on the model grid.

    Attributes:
        image: ``C x C x Z`` windowed float16 in [0, 1].
        regions: ``C x C x Z`` int32 super-pixel ids, unique across slices, 0 = background.
        body: indices of the slices with enough body in them to centre a block on.
    """

    image: np.ndarray
    regions: np.ndarray
    body: np.ndarray


def build_region_volumes(
    volumes: list[Volume],
    window: IntensityWindow,
    spacing: tuple[float, float],
    canvas: int,
    cache: SuperpixelCache,
    min_body_fraction: float = 0.05,
    preparing: Preparing | None = None,
) -> list[RegionVolume]:
    """Volumes resampled to ``spacing`` (in-plane, across slices) mm, windowed, centred on the canvas,
    with per-slice super-pixels; ``preparing`` is called before each volume and each slice's super-pixels,
    and at the end (:data:`lrc.train.slices.Preparing`).

    Raises:
        ValueError: no volume holds a slice with body at this window.
    """
    out = []
    for index, volume in enumerate(volumes):
        prepared_share(preparing, index, len(volumes))
        grid = to_model_grid(volume, spacing[0], spacing[1])
        image = center_on_canvas(window.apply(grid.array), canvas).astype(np.float16)  # C x C x Z
        regions = np.zeros(image.shape, dtype=np.int32)
        offset = 0
        for k in range(image.shape[2]):
            prepared_share(preparing, index, len(volumes), k / image.shape[2])
            plane = image[:, :, k].astype(np.float32)
            ids = cache.get(plane).astype(np.int32)
            regions[:, :, k] = np.where(ids > 0, ids + offset, 0)
            offset += int(ids.max(initial=0))
        body = np.flatnonzero((image > 0.02).mean(axis=(0, 1)) >= min_body_fraction)
        if len(body):
            out.append(RegionVolume(image, regions, body))
    prepared_share(preparing, len(volumes), len(volumes))
    if not out:
        raise ValueError("no usable slices: the volumes hold no body at this window")
    return out


def renumber(regions: torch.Tensor) -> torch.Tensor:
    """Region ids of one block renumbered 1..R in order (0 stays 0)."""
    with_zero = torch.cat([regions.new_zeros(1), regions.reshape(-1)])
    _, inverse = torch.unique(with_zero, return_inverse=True)
    return inverse[1:].reshape(regions.shape)


class BlockSampler:
    """Random ``C x C x depth`` blocks (whole canvas in-plane) centred on body slices.

    Args:
        volumes: from :func:`build_region_volumes`.
        depth: slices per block (volumes shorter than that are padded with background).
        batch_size: blocks per batch.
        rng: numpy generator (the training seed).
    """

    def __init__(self, volumes: list[RegionVolume], depth: int, batch_size: int, rng: np.random.Generator) -> None:
        if depth < 1 or batch_size < 1:
            raise ValueError(f"need depth >= 1 and batch_size >= 1, got {depth} and {batch_size}")
        self.depth = depth
        self.batch_size = batch_size
        self.rng = rng
        self.volumes = volumes
        self.images = [torch.from_numpy(v.image) for v in volumes]
        self.regions = [torch.from_numpy(v.regions) for v in volumes]

    def __len__(self) -> int:
        """Body slices in all volumes (what a block can be centred on)."""
        return sum(len(v.body) for v in self.volumes)

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, None]:
        """Images ``B x 1 x C x C x depth`` (float), region ids ``B x C x C x depth`` (long), no labels."""
        images, maps = [], []
        for _ in range(self.batch_size):
            index = int(self.rng.integers(len(self.volumes)))
            image, regions = self.images[index], self.regions[index]
            centre = int(self.rng.choice(self.volumes[index].body))
            slices = image.shape[2]
            start = min(max(0, centre - self.depth // 2), max(0, slices - self.depth))
            block = image[:, :, start : start + self.depth]
            ids = regions[:, :, start : start + self.depth]
            if block.shape[2] < self.depth:  # a short volume: pad with background
                pad = (0, self.depth - block.shape[2])
                block, ids = torch.nn.functional.pad(block, pad), torch.nn.functional.pad(ids, pad)
            images.append(block)
            maps.append(renumber(ids))
        batch_images = torch.stack(images)[:, None].to(device, non_blocking=True).float()  # B x 1 x C x C x D
        return batch_images, torch.stack(maps).to(device, non_blocking=True).long(), None  # B x C x C x D
