"""Views: the super-pixel map follows the image's geometry exactly; intensities differ per view."""

from __future__ import annotations

import math

import pytest
import torch

from lrc.views import ViewConfig, make_views, warp


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
