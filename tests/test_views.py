"""Views: the super-pixel map follows the image's geometry exactly; intensities differ per view."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from lrc.views import ViewConfig, _blur, geometric_views, intensity, make_views, mask_cells, random_affine, warp


def theta_for(degrees: float, flip: bool) -> torch.Tensor:
    angle = math.radians(degrees)
    sign = -1.0 if flip else 1.0
    return torch.tensor(
        [[[math.cos(angle) * sign, -math.sin(angle), 0.0], [math.sin(angle) * sign, math.cos(angle), 0.0]]]
    )


@pytest.mark.parametrize(
    ("degrees", "flip", "expected"),
    [
        (90, False, lambda m: torch.rot90(m, 1, dims=(-2, -1))),
        (0, True, lambda m: torch.flip(m, dims=(-1,))),
        (180, False, lambda m: torch.rot90(m, 2, dims=(-2, -1))),
        (270, True, lambda m: m.transpose(-2, -1)),
    ],
)
def test_map_follows_image_exactly(degrees, flip, expected):
    regions = torch.randint(1, 50, (1, 6, 6))
    image = regions[:, None].float() / 100  # piecewise constant: each pixel shows its region
    warped_image, warped_map = warp(image, regions, theta_for(degrees, flip), 6)
    assert torch.equal(warped_map, expected(regions))
    assert torch.allclose(warped_image[:, 0] * 100, warped_map.float(), atol=1e-4)


def test_views_share_geometry_by_default():
    images = torch.rand(4, 1, 64, 64)
    maps = torch.randint(0, 20, (4, 64, 64))
    view_1, view_2, map_1, map_2 = make_views(images, maps, 48, generator=torch.Generator().manual_seed(0))
    assert view_1.shape == (4, 1, 48, 48)
    assert map_1.shape == (4, 48, 48)
    assert torch.equal(map_1, map_2)
    assert not torch.allclose(view_1, view_2)  # independent intensity transforms


def test_independent_geometry_option():
    images = torch.rand(4, 1, 64, 64)
    maps = torch.randint(0, 20, (4, 64, 64))
    config = ViewConfig(independent_geometry=True)
    _, _, map_1, map_2 = make_views(images, maps, 48, config, torch.Generator().manual_seed(0))
    assert not torch.equal(map_1, map_2)


def test_same_seed_same_views():
    images, maps = torch.rand(2, 1, 32, 32), torch.randint(0, 9, (2, 32, 32))
    a = make_views(images, maps, 32, generator=torch.Generator().manual_seed(3))
    b = make_views(images, maps, 32, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_shape_errors_print_shapes():
    with pytest.raises(ValueError, match=r"\(2, 32, 32\)"):
        make_views(torch.rand(2, 32, 32), torch.zeros(2, 32, 32, dtype=torch.long), 32)


def theta_3d(degrees: float, flip: bool) -> torch.Tensor:
    """The 2D matrix acting in-plane (rows/columns 1-2), identity along the depth (row/column 0)."""
    theta = torch.zeros(1, 3, 4)
    theta[0, 0, 0] = 1.0
    theta[0, 1:, 1:3] = theta_for(degrees, flip)[0, :, :2]
    return theta


@pytest.mark.parametrize(("degrees", "flip"), [(90, False), (0, True), (270, True)])
def test_3d_map_follows_image_like_each_slice_in_2d(degrees, flip):
    regions = torch.randint(1, 50, (1, 6, 6, 4))  # B x X x Y x Z
    image = regions[:, None].float() / 100
    warped_image, warped_map = warp(image, regions, theta_3d(degrees, flip), (6, 6, 4))
    for k in range(4):
        _, expected = warp(image[..., k], regions[..., k], theta_for(degrees, flip), 6)
        assert torch.equal(warped_map[..., k], expected)
    assert torch.allclose(warped_image[:, 0] * 100, warped_map.float(), atol=1e-4)


def test_3d_views():
    images = torch.rand(2, 1, 32, 32, 24)
    maps = torch.randint(0, 20, (2, 32, 32, 24))
    view_1, view_2, map_1, map_2 = make_views(images, maps, (16, 16, 16), generator=torch.Generator().manual_seed(0))
    assert view_1.shape == view_2.shape == (2, 1, 16, 16, 16)
    assert map_1.shape == (2, 16, 16, 16)
    assert torch.equal(map_1, map_2)
    assert not torch.allclose(view_1, view_2)
    theta = random_affine(5, ViewConfig(), torch.device("cpu"), torch.Generator().manual_seed(0), spatial_dims=3)
    assert theta.shape == (5, 3, 4)
    assert torch.equal(theta[:, 0, 1:3], torch.zeros(5, 2))  # depth never mixes with the plane
    assert torch.equal(theta[:, 1:, 0], torch.zeros(5, 2))


def test_blur_is_separable_over_every_axis():
    images = torch.zeros(2, 1, 9, 9, 9)
    images[:, :, 4, 4, 4] = 1.0
    blurred = _blur(images, torch.tensor([0.0, 1.0]))
    assert torch.allclose(blurred[0], images[0], atol=1e-6)  # sigma 0: unchanged
    kernel = blurred[1, 0]
    assert torch.allclose(kernel.sum(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(kernel, kernel.permute(1, 2, 0), atol=1e-6)  # the same along x, y and z
    assert torch.allclose(kernel, kernel.flip(0), atol=1e-6)


def test_make_views_is_the_geometric_views_then_their_intensity():
    images, maps = torch.rand(3, 1, 40, 40), torch.randint(0, 9, (3, 40, 40))
    config = ViewConfig(gamma=(0.7, 1.5), scale=(0.9, 1.1), shift=0.1)
    made = make_views(images, maps, 32, config, torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(4)
    clean_1, clean_2, map_1, map_2 = geometric_views(images, maps, 32, config, generator)
    assert_close(made[0], intensity(clean_1, config, generator))
    assert_close(made[1], intensity(clean_2, config, generator))
    assert torch.equal(made[2], map_1)
    assert torch.equal(made[3], map_2)


@pytest.mark.parametrize("shape", [(4, 1, 32, 32), (2, 1, 20, 16, 12)])
def test_mask_cells_hides_whole_cells_with_the_image_mean(shape):
    images = torch.rand(shape) + torch.arange(shape[0]).reshape(-1, *[1] * (len(shape) - 1))  # one level per image
    hidden = mask_cells(images, 0.5, cell=4, generator=torch.Generator().manual_seed(0))
    assert hidden.shape == images.shape
    changed = hidden != images
    mean = images.mean(dim=tuple(range(1, images.ndim)), keepdim=True)
    assert torch.equal(hidden[changed], mean.expand_as(images)[changed])  # hidden pixels hold their image's mean
    assert 0.3 < float(changed.float().mean()) < 0.7
    cells = changed.float()
    for axis in range(2, len(shape)):
        cells = cells.unfold(axis, 4, 4)  # B x 1 x h x w[ x d] x 4 x 4[ x 4]
    per_cell = cells.mean(dim=tuple(range(-(len(shape) - 2), 0)))
    assert bool(((per_cell == 0) | (per_cell == 1)).all())  # whole cells or none
    assert torch.equal(mask_cells(images, 0.0), images)
