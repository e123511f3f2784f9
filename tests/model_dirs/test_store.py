"""Model directories: round trip, and refusals with clear reasons."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lrc.intensity import IntensityWindow
from lrc.io.labels import LabelTable
from lrc.model_dirs import ModelCard, ModelCardError, load_model, save_model
from lrc.nets.unet import UNet

SMALL = (8, 8, 16, 16, 32, 8)


def segmentation_card(net: UNet) -> ModelCard:
    return ModelCard(
        kind="segmentation",
        architecture="",
        arguments=dict(net.arguments),
        window=IntensityWindow.for_modality("CT"),
        spacing=(1.5, 1.5, None),
        canvas=128,
        labels=LabelTable.from_names({1: "spleen", 5: "liver"}),
    )


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, UNet]:
    net = UNet(2, 1, 3, SMALL)
    return save_model(tmp_path / "model", net, segmentation_card(net)), net


def test_round_trip(saved):
    directory, net = saved
    loaded, card = load_model(directory, kind="segmentation")
    for (name, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert card.labels is not None
    assert [card.labels[v].name for v in card.labels] == ["spleen", "liver"]
    assert card.window == IntensityWindow.for_modality("CT")
    assert card.software["lrc"]
    assert len(card.weights_sha256) == 64


def test_save_replaces_atomically(saved):
    directory, net = saved
    save_model(directory, net, segmentation_card(net))
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "weights.safetensors"]
    assert [p.name for p in directory.parent.iterdir()] == ["model"]  # no temporary folders left


def test_refuses_tampered_weights(saved):
    directory, _ = saved
    data = bytearray((directory / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (directory / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match="does not match the sha256"):
        load_model(directory)


def test_refuses_wrong_kind_and_format(saved):
    directory, _ = saved
    with pytest.raises(ModelCardError, match="a pretrained model is needed"):
        load_model(directory, kind="pretrained")
    card = json.loads((directory / "model.json").read_text())
    card["format"] = "other/9"
    (directory / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match="unknown model format"):
        load_model(directory)


def test_refuses_card_that_contradicts_weights(saved):
    directory, _ = saved
    card = json.loads((directory / "model.json").read_text())
    card["arguments"]["features"] = [16, 16, 32, 32, 64, 16]
    (directory / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match="do not fit the architecture"):
        load_model(directory)


def test_refuses_label_count_mismatch():
    net = UNet(2, 1, 3, SMALL)
    with pytest.raises(ModelCardError, match="3 output channels but the label table 1 labels"):
        ModelCard(
            kind="segmentation",
            architecture="",
            arguments=dict(net.arguments),
            window=IntensityWindow(),
            spacing=(1.5, 1.5, None),
            canvas=128,
            labels=LabelTable.from_names(["liver"]),
        )


def test_inference_tile_round_trip_and_refusals(saved):
    """The card's default field of view (``Predictor(tile="model")``): kept, and checked on load."""
    directory, net = saved
    assert load_model(directory)[1].inference_tile is None  # whole slices, as cards before the field
    save_model(directory, net, replace(segmentation_card(net), inference_tile=64))
    assert load_model(directory)[1].inference_tile == 64
    card = json.loads((directory / "model.json").read_text())
    for bad, message in ((40, "multiple of 16"), ("patch", "incomplete or invalid")):
        (directory / "model.json").write_text(json.dumps(card | {"inference_tile": bad}))
        with pytest.raises(ModelCardError, match=message):
            load_model(directory)
    net3d = UNet(3, 1, 3, SMALL)
    with pytest.raises(ModelCardError, match="for 2D networks"):
        replace(segmentation_card(net3d), inference_tile=64)


def test_not_a_model_directory(tmp_path: Path):
    with pytest.raises(ModelCardError, match="not a model directory"):
        load_model(tmp_path)
