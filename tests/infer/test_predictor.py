"""The predictor on 3D networks (sliding window), and its refusals."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lrc.infer import Predictor
from lrc.infer.stages import StageTimes
from lrc.intensity import IntensityWindow
from lrc.io import Volume
from lrc.io.geometry import align_to, reorient
from lrc.io.labels import LabelTable
from lrc.model_dirs import ModelCard
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


def reference_2d(predictor: Predictor, volume: Volume) -> np.ndarray:
    """The slow, obvious 2D prediction: reorient a copy, one slice at a time, arg-max, reorient back."""
    canonical = reorient(volume, "RAS")
    low, high = predictor.card.window.bounds(canonical.array)
    classes = np.zeros(canonical.shape, dtype=np.int64)
    size = tuple(
        max(1, round(n * s / t)) for n, s, t in zip(canonical.shape[:2], canonical.spacing[:2], (2.0, 2.0), strict=True)
    )
    for k in range(canonical.shape[2]):
        image = torch.from_numpy(canonical.array[:, :, k].astype(np.float32))[None, None]
        image = ((image - low) / (high - low)).clamp(0, 1)
        image = torch.nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False)
        pad = [max(32, -(-n // 16) * 16) - n for n in size]  # a multiple of 16, and 32 at least
        image = torch.nn.functional.pad(image, (pad[1] // 2, pad[1] - pad[1] // 2, pad[0] // 2, pad[0] - pad[0] // 2))
        with torch.no_grad():
            logits = predictor.net(image)[
                :, :, pad[0] // 2 : pad[0] // 2 + size[0], pad[1] // 2 : pad[1] // 2 + size[1]
            ]
        logits = torch.nn.functional.interpolate(logits, size=canonical.shape[:2], mode="bilinear", align_corners=False)
        classes[:, :, k] = logits[0].argmax(dim=0).numpy()
    labels = canonical.with_array(predictor.values[classes], modality="SEG")
    return align_to(labels, volume).array


@pytest.mark.parametrize(
    ("affine", "labels"),
    [
        (np.diag([-0.8, -0.8, 2.5, 1.0]), {3: "liver"}),  # LPS, as read from DICOM: x and y flipped
        (np.array([[0, 0, 2.5, 0], [0.8, 0, 0, 0], [0, -0.8, 0, 0], [0, 0, 0, 1.0]]), {300: "liver"}),  # axes permuted
    ],
)
def test_2d_matches_slice_by_slice_reference(affine: np.ndarray, labels: dict[int, str]):
    torch.manual_seed(0)
    net = UNet(2, 1, 2, SMALL).eval()
    card = card_for(net, (2.0, 2.0, None))
    card.labels = LabelTable.from_names(labels)
    predictor = Predictor(net, card, "cpu", batch_size=3)
    rng = np.random.default_rng(1)
    volume = Volume(np.asfortranarray(rng.integers(-300, 400, (50, 44, 7)).astype(np.int16)), affine, "CT")
    times = StageTimes()
    result = predictor.predict(volume, times)
    assert result.shape == volume.shape
    assert_allclose(result.affine, volume.affine)
    assert result.array.dtype == (np.uint8 if max(labels) < 256 else np.uint16)
    expected = reference_2d(predictor, volume)
    assert set(np.unique(expected)) == {0, max(labels)}  # both classes occur, so the comparison means something
    assert (result.array == expected).mean() > 0.999  # float summation order may flip a tie
    assert set(times.seconds) == {"preprocess", "model", "postprocess"}


@pytest.mark.parametrize(
    ("size", "depth", "spacing"),
    [
        (2, 1, 2.0),  # the smallest image the readers take
        (16, 3, 2.0),  # 16 x 16 at the model's spacing: a 1 x 1 bottleneck unless padded further
        (64, 1, 0.4),  # 64 pixels of 0.4 mm: 13 x 13 at the model's 2 mm
    ],
)
def test_2d_small_slices_are_padded_for_the_network(shared_data: Path, size: int, depth: int, spacing: float):
    net = UNet(2, 1, 2, SMALL)
    predictor = Predictor(net, card_for(net, (2.0, 2.0, None)), "cpu", batch_size=2)  # a batch of one slice last
    ct = np.asarray(nib.load(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct_sm.nii.gz").dataobj)
    block = np.ascontiguousarray(ct[30 : 30 + size, 30 : 30 + size, :depth]).astype(np.int16)  # real CT, HU
    volume = Volume(block, np.diag([-spacing, -spacing, 3.0, 1.0]), "CT")
    labels = predictor.predict(volume)
    assert labels.shape == volume.shape
    assert set(np.unique(labels.array)) <= {0, 3}
