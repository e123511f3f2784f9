"""The LRC local loss and its region sampling."""

from __future__ import annotations

import math

import pytest
import torch
from numpy.testing import assert_allclose

from lrc.losses import LocalRegionContrastLoss, sample_regions
from lrc.nets.unet import ContrastiveUNet, UNet

# (temperature, embeddings, labels, expected loss), computed by hand
CASES = [
    # anchors 0 and 1 are positives of each other; anchor 2 has none and is left out
    (1.0, [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0, 0, 1], math.log(math.e + 1) - 1),
    # two pairs of orthogonal positives: each anchor sees its positive at cos 0, negatives at cos 1 and 0
    (
        0.5,
        [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]],
        [0, 1, 1, 0],
        -(0.0 / 0.5 - math.log(math.exp(0.0) + math.exp(2.0) + math.exp(0.0))),
    ),
    # no positives anywhere: zero
    (0.1, [[1.0, 0.0], [0.0, 1.0]], [0, 1], 0.0),
]


@pytest.mark.parametrize(("temperature", "embeddings", "labels", "expected"), CASES)
def test_values_by_hand(temperature, embeddings, labels, expected):
    loss = LocalRegionContrastLoss(temperature)(torch.tensor(embeddings), torch.tensor(labels))
    assert_allclose(float(loss), expected, rtol=1e-6, atol=1e-7)


def test_permutation_invariance():
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(40, 16, generator=generator), dim=1)
    labels = torch.randint(0, 6, (40,), generator=generator)
    order = torch.randperm(40, generator=generator)
    loss = LocalRegionContrastLoss(0.1)
    assert_allclose(float(loss(embeddings, labels)), float(loss(embeddings[order], labels[order])), rtol=1e-5)
    relabelled = (labels + 7) * 3  # only equality of labels matters
    assert_allclose(float(loss(embeddings, labels)), float(loss(embeddings, relabelled)), rtol=1e-6)


def test_shape_errors_print_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(5,\)"):
        LocalRegionContrastLoss()(torch.zeros(4, 3), torch.zeros(5))
    with pytest.raises(ValueError, match="positive"):
        LocalRegionContrastLoss(0.0)


def test_sampled_pixels_lie_in_their_region_in_both_views():
    generator = torch.Generator().manual_seed(1)
    map_1 = torch.randint(0, 12, (3, 32, 32), generator=generator)
    map_2 = torch.flip(map_1, dims=(-1,))  # view 2: the same regions, elsewhere
    sample = sample_regions(map_1, map_2, regions_per_image=5, pixels_per_region=4, generator=generator)
    assert sample.index_1.shape == (3, 5, 4)
    assert bool(sample.valid.all())
    assert int(sample.region.min()) >= 1  # region 0 (background) is never sampled
    for b in range(3):
        for k in range(5):
            region = sample.region[b, k]
            assert bool((map_1[b].reshape(-1)[sample.index_1[b, k]] == region).all())
            assert bool((map_2[b].reshape(-1)[sample.index_2[b, k]] == region).all())
            assert len(set(sample.index_1[b, k].tolist())) == 4  # M distinct pixels
        assert len(set(sample.region[b].tolist())) == 5  # K distinct regions


def test_small_or_missing_regions_are_not_sampled():
    map_1 = torch.zeros(1, 8, 8, dtype=torch.long)
    map_1[0, :4] = 1  # 32 pixels
    map_1[0, 4, :2] = 2  # 2 pixels: fewer than M
    map_2 = map_1.clone()
    map_2[map_2 == 1] = 0  # region 1 cut out of view 2 (cropped away)
    map_2[0, 7] = 3  # region 3 only in view 2
    sample = sample_regions(map_1, map_2, regions_per_image=4, pixels_per_region=4)
    assert not bool(sample.valid.any())


def test_gradients_reach_the_local_head():
    torch.manual_seed(0)
    net = ContrastiveUNet(UNet(2, 1, 2, (8, 8, 16, 16, 32, 8)), dim=16)
    images = torch.rand(2, 1, 32, 32)
    maps = torch.randint(1, 6, (2, 32, 32))
    _, dense = net(torch.cat([images, images.flip(-1)]))
    sample = sample_regions(maps, maps.flip(-1), 4, 4)
    loss = LocalRegionContrastLoss(0.1).from_views(dense[:2], dense[2:], sample, net.project_local)
    loss.backward()
    for name, parameter in net.named_parameters():
        if name.startswith(("local_head", "backbone.upcat_1", "backbone.conv_0")):
            assert parameter.grad is not None, name
            assert parameter.grad.abs().sum() > 0, name
        if name.startswith("global_head"):
            assert parameter.grad is None


def test_from_views_positives_are_region_identity():
    """Two views whose embeddings equal a one-hot of the region: the loss is at its minimum for that geometry."""
    maps = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]])
    dense = torch.nn.functional.one_hot(maps, 5).permute(0, 3, 1, 2).float()  # 1 x 5 x 4 x 4
    sample = sample_regions(maps, maps, regions_per_image=4, pixels_per_region=2)
    loss = LocalRegionContrastLoss(1.0).from_views(dense, dense, sample)
    # each anchor: 3 positives at cos 1, 12 negatives at cos 0 among 15 others
    expected = -(1.0 - math.log(3 * math.e + 12))
    assert_allclose(float(loss), expected, rtol=1e-6)


def test_groups_leave_other_images_out_of_the_softmax():
    # anchors 0, 1 (image 0) are positives; anchor 2 (image 1) would be a negative at cos 1 for both
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels, groups = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 0])
    loss = LocalRegionContrastLoss(1.0)
    batch_form = -(1.0 - math.log(math.e + math.e + 1.0))  # anchors 0 and 1: positive, anchor 2, anchor 3
    assert_allclose(float(loss(embeddings, labels)), batch_form, rtol=1e-6)
    image_form = -(1.0 - math.log(math.e + 1.0))  # anchor 2 is neither positive nor negative
    assert_allclose(float(loss(embeddings, labels, groups)), image_form, rtol=1e-6)
    with pytest.raises(ValueError, match=r"groups N like labels, got \(3,\) and \(4,\)"):
        loss(embeddings, labels, groups[:3])


def test_image_negatives_ignore_the_other_images_of_the_batch():
    # image 1 holds the same regions as image 0, embedded identically: with batch negatives its
    # pixels are negatives at cos 1 of image 0's; with image negatives the loss is image 0's alone
    maps = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]]).repeat(2, 1, 1)
    dense = torch.nn.functional.one_hot(maps, 5).permute(0, 3, 1, 2).float()  # 2 x 5 x 4 x 4
    sample = sample_regions(maps, maps, regions_per_image=4, pixels_per_region=2)
    alone = -(1.0 - math.log(3 * math.e + 12))  # as in the single-image test above
    per_image = LocalRegionContrastLoss(1.0, negatives="image").from_views(dense, dense, sample)
    assert_allclose(float(per_image), alone, rtol=1e-6)
    per_batch = LocalRegionContrastLoss(1.0).from_views(dense, dense, sample)
    assert_allclose(float(per_batch), -(1.0 - math.log(3 * math.e + 4 * math.e + 24)), rtol=1e-6)
    with pytest.raises(ValueError, match="negatives must be one of"):
        LocalRegionContrastLoss(negatives="pixel")


def test_margin_leaves_regions_of_like_intensity_out_of_the_negatives():
    # as above, image 1 repeats image 0; region r has intensity r / 10 in both images and views
    maps = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]]).repeat(2, 1, 1)
    dense = torch.nn.functional.one_hot(maps, 5).permute(0, 3, 1, 2).float()  # 2 x 5 x 4 x 4
    sample = sample_regions(maps, maps, regions_per_image=4, pixels_per_region=2)
    views = (maps[:, None] / 10.0, maps[:, None] / 10.0)
    near = LocalRegionContrastLoss(1.0, margin=0.05).from_views(dense, dense, sample, views=views)
    # the other image's copy of the region (4 embeddings at cos 1) leaves; the 24 others stay
    assert_allclose(float(near), -(1.0 - math.log(3 * math.e + 24)), rtol=1e-6)
    wide = LocalRegionContrastLoss(1.0, margin=1.0).from_views(dense, dense, sample, views=views)
    assert_allclose(float(wide), math.log(3), rtol=1e-6)  # no negatives left: only the positives
    ignored = LocalRegionContrastLoss(1.0).from_views(dense, dense, sample, views=views)  # margin 0: off
    assert_allclose(float(ignored), -(1.0 - math.log(3 * math.e + 4 * math.e + 24)), rtol=1e-6)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        LocalRegionContrastLoss(margin=-0.1)
