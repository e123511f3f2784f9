"""The predictor on 3D networks (sliding window), and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lrc.infer import Predictor
from lrc.intensity import IntensityWindow
from lrc.io import Volume
from lrc.io.labels import LabelTable
from lrc.models import ModelCard
from lrc.nets.unet import UNet

SMALL = (4, 4, 8, 8, 16, 4)


def card_for(net: UNet, spacing: tuple[float, float, float | None], **training: object) -> ModelCard:
    return ModelCard(
        kind="segmentation",
        architecture="",
        arguments=dict(net.arguments),
        window=IntensityWindow(),
        spacing=spacing,
        canvas=64,
        labels=LabelTable.from_names({3: "liver"}),
        training=dict(training),
    )


def test_3d_sliding_window_keeps_the_input_grid():
    torch.manual_seed(0)
    net = UNet(3, 1, 2, SMALL)
    with torch.no_grad():  # make the output depend on the input: class 1 where the image is bright
        net.final_conv.weight.zero_()
        net.final_conv.bias.copy_(torch.tensor([0.0, -1.0]))
    predictor = Predictor(net, card_for(net, (2.0, 2.0, 2.0), patch=[32, 32, 16]), "cpu")
    affine = np.diag([-1.0, 1.0, 1.5, 1.0])
    volume = Volume(np.random.default_rng(0).integers(-200, 300, (40, 36, 20)).astype(np.int16), affine, "CT")
    labels = predictor.predict(volume)
    assert labels.shape == volume.shape
    assert_allclose(labels.affine, affine)
    assert set(np.unique(labels.array)) <= {0, 3}


def test_refuses_pretrained_card():
    net = UNet(2, 1, 2, SMALL)
    card = ModelCard(
        kind="pretrained",
        architecture="",
        arguments=dict(net.arguments),
        window=IntensityWindow(),
        spacing=(1.5, 1.5, None),
        canvas=64,
    )
    with pytest.raises(ValueError, match="segmentation model is needed"):
        Predictor(net, card, "cpu")


def test_bf16_switch_is_float32_on_cpu():
    net = UNet(2, 1, 2, SMALL)
    volume = Volume(np.random.default_rng(1).integers(-200, 300, (32, 32, 3)).astype(np.int16), np.eye(4), "CT")
    card = card_for(net, (1.0, 1.0, None))
    a = Predictor(net, card, "cpu").predict(volume)
    b = Predictor(net, card, "cpu", bf16=False).predict(volume)
    assert np.array_equal(a.array, b.array)
