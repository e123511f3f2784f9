"""Two augmented views of each slice, with the super-pixel map carried along.

Geometry (random crop-and-resize, flip, rotation) moves the image bilinearly and its super-pixel
map by nearest neighbour with the *same* sampling grid, so a pixel keeps its region id. By default
both views share one geometric transform (the LRC specification: pixel (i, j) corresponds across
views); ``independent_geometry`` draws one per view (the hypothesis of DESIGN.md's probe: regions
are then matched across views by super-pixel id only, so the local task needs more than
intensity). Intensity transforms (gamma, scale/shift, blur, noise) are drawn independently per view.

Everything runs batched on the tensors' device (GPU in production): no per-sample Python transforms
in the training loop.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lrc.view_config import ViewConfig


def _uniform(
    low: float, high: float, count: int, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, device=device, generator=generator)


def random_affine(
    count: int,
    config: ViewConfig,
    device: torch.device,
    generator: torch.Generator | None = None,
    spatial_dims: int = 2,
) -> torch.Tensor:
    """``N x 2 x 3`` (2D) or ``N x 3 x 4`` (3D) sampling matrices (output -> input, normalised
    coordinates) for ``affine_grid``.

    The in-plane part (crop scale, rotation, flip, shift) is the same in 2D and 3D; in 3D the crop
    also spans ``scale`` of the depth, at a random offset, so voxels keep their aspect ratio.
    """
    side = _uniform(*config.crop_scale, count, device, generator)  # N
    angle = _uniform(-config.rotate_degrees, config.rotate_degrees, count, device, generator) * (math.pi / 180)
    flip = torch.ones(count, device=device)
    if config.flip:
        flip = torch.where(torch.rand(count, device=device, generator=generator) < 0.5, -flip, flip)
    cos, sin = torch.cos(angle) * side, torch.sin(angle) * side  # N, N
    room = 1.0 - side  # the crop centre may move this far (normalised units)
    shift_x = _uniform(-1.0, 1.0, count, device, generator) * room
    shift_y = _uniform(-1.0, 1.0, count, device, generator) * room
    plane = torch.stack(
        [
            torch.stack([cos * flip, -sin, shift_x], dim=1),
            torch.stack([sin * flip, cos, shift_y], dim=1),
        ],
        dim=1,
    )  # N x 2 x 3
    if spatial_dims == 2:
        return plane
    # Tensors are B x C x X x Y x Z, so grid coordinates run (z, y, x): depth is the first row and
    # column, and the plane's (y, x) block keeps its 2D meaning.
    shift_z = _uniform(-1.0, 1.0, count, device, generator) * room
    theta = torch.zeros(count, 3, 4, device=device)  # N x 3 x 4
    theta[:, 0, 0] = side
    theta[:, 0, 3] = shift_z
    theta[:, 1:, 1:3] = plane[:, :, :2]
    theta[:, 1:, 3] = plane[:, :, 2]
    return theta


def warp(
    images: torch.Tensor, maps: torch.Tensor, theta: torch.Tensor, size: int | tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample ``BCHW[D]`` images (linearly) and ``BHW[D]`` region maps (nearest) with one grid each.

    ``size`` is the output's spatial shape (an int: a square). Points outside the input become 0
    (background, no region).
    """
    spatial = images.ndim - 2
    shape = (size,) * spatial if isinstance(size, int) else tuple(size)
    grid = nn.functional.affine_grid(theta, [images.shape[0], 1, *shape], align_corners=False)  # B x S.. x dims
    warped = nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Region ids are exact in float32 below 2**24; nearest sampling never mixes two ids.
    warped_maps = (
        nn.functional.grid_sample(
            maps[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False
        )[:, 0]
        .round()
        .long()
    )  # B x S..
    return warped, warped_maps


def intensity(images: torch.Tensor, config: ViewConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Independent random gamma, scale/shift, blur and noise per image of a ``B1HW[D]`` batch in [0, 1]."""
    batch, device = images.shape[0], images.device
    shape = (batch,) + (1,) * (images.ndim - 1)
    gamma = _uniform(*config.gamma, batch, device, generator).reshape(shape)
    out = images.clamp(min=0.0) ** gamma
    out = out * _uniform(*config.scale, batch, device, generator).reshape(shape)
    out = out + _uniform(-config.shift, config.shift, batch, device, generator).reshape(shape)
    out = _blur(out, _uniform(*config.blur_sigma, batch, device, generator))
    noise = torch.randn(out.shape, device=device, generator=generator)
    return out + noise * _uniform(*config.noise_std, batch, device, generator).reshape(shape)


def _blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Separable Gaussian blur of ``B1...`` images, one sigma per image (0 leaves it unchanged)."""
    batch = images.shape[0]
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)  # T
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))  # B x T
    kernel = (kernel / kernel.sum(dim=1, keepdim=True))[:, None, None, :]  # B x 1 x 1 x T
    out = images
    for axis in range(2, images.ndim):
        moved = out.movedim(axis, -1)  # B x 1 x ... x L
        lines = moved.reshape(1, batch, -1, moved.shape[-1])  # 1 x B x lines x L: one group per image
        padded = nn.functional.pad(lines, (radius, radius, 0, 0), mode="replicate")
        out = nn.functional.conv2d(padded, kernel, groups=batch).reshape(moved.shape).movedim(-1, axis)
    return out


def make_views(
    images: torch.Tensor,
    maps: torch.Tensor,
    size: int | tuple[int, ...],
    config: ViewConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two views of ``B1HW[D]`` images in [0, 1] and their ``BHW[D]`` super-pixel maps.

    Returns:
        view 1 ``B1S..``, view 2 ``B1S..``, map 1 ``BS..``, map 2 ``BS..`` (``S.. = size``, an int
        meaning a square or cube).
    """
    config = config or ViewConfig()
    view_1, view_2, map_1, map_2 = geometric_views(images, maps, size, config, generator)
    return intensity(view_1, config, generator), intensity(view_2, config, generator), map_1, map_2


def geometric_views(
    images: torch.Tensor,
    maps: torch.Tensor,
    size: int | tuple[int, ...],
    config: ViewConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The views of :func:`make_views` before their intensity changes (the clean images, e.g. to restore)."""
    if images.ndim not in (4, 5) or images.shape[1] != 1 or maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"need images B1HW[D] and maps BHW[D], got {tuple(images.shape)} and {tuple(maps.shape)}")
    dims = images.ndim - 2
    theta_1 = random_affine(images.shape[0], config, images.device, generator, dims)
    theta_2 = (
        random_affine(images.shape[0], config, images.device, generator, dims)
        if config.independent_geometry
        else theta_1
    )
    view_1, map_1 = warp(images, maps, theta_1, size)
    view_2, map_2 = warp(images, maps, theta_2, size)
    return view_1, view_2, map_1, map_2


def mask_cells(
    images: torch.Tensor, fraction: float, cell: int = 8, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``B1S..`` images with a random ``fraction`` of their ``cell``-pixel squares (cubes) set to the image's mean.

    The in-painting corruption of restoration pre-training (Zhou et al., "Models Genesis", MedIA 2021).
    """
    batch, spatial = images.shape[0], images.shape[2:]
    coarse = [math.ceil(side / cell) for side in spatial]
    hidden = torch.rand((batch, 1, *coarse), device=images.device, generator=generator) < fraction  # B x 1 x s..
    for axis, side in enumerate(spatial, start=2):
        hidden = hidden.repeat_interleave(cell, dim=axis).narrow(axis, 0, side)  # B x 1 x S..
    mean = images.mean(dim=tuple(range(1, images.ndim)), keepdim=True)  # B x 1 x 1..
    return torch.where(hidden, mean, images)
