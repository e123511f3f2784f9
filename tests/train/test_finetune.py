"""Fine-tuning meets labels by name: the values a model writes, the output channels that carry over, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lrc.infer import Predictor
from lrc.io import Volume, read_nifti
from lrc.io.labels import LabelTable
from lrc.label_match import LabelMismatch
from lrc.models.store import load_model, read_card
from lrc.train.finetune import finetune
from lrc.train.finetune_config import FinetuneConfig

SMALL = (8, 8, 16, 16, 32, 8)
TINY = {"batch_size": 2, "patch": 48, "spacing": 6.0, "canvas": 64, "features": SMALL, "validate_every": 100}


def renumbered(label: Volume, values: dict[int, int]) -> Volume:
    """Only the structures of ``values`` (old -> new), the rest background."""
    out = np.zeros(label.array.shape, dtype=np.uint8)
    for old, new in values.items():
        out[label.array == old] = new
    return Volume(out, label.affine)


@pytest.fixture(scope="module")
def small_case(shared_data: Path) -> tuple[Volume, Volume]:
    """TotalSegmentator's small abdominal CT (122x101x30, 3 mm) and its label map, in TotalSegmentator's values."""
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    return read_nifti(folder / "example_ct_sm.nii.gz", modality="CT"), read_nifti(folder / "example_seg.nii.gz")


@pytest.fixture(scope="module")
def base(small_case: tuple[Volume, Volume], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmentation model writing 1 = spleen, 5 = liver (output channels: background, spleen, liver)."""
    out = tmp_path_factory.mktemp("base") / "base"
    config = FinetuneConfig(steps=2, **TINY)
    return finetune([small_case], LabelTable.from_names({5: "liver", 1: "spleen"}), out, config, validation=[])


def test_output_channels_and_values_follow_the_names_of_the_base(base, small_case, tmp_path: Path):
    image, label = small_case
    case = (image, renumbered(label, {5: 7, 2: 9}))  # liver as 7, right kidney as 9
    labels = LabelTable.from_names({7: "liver", 9: "kidney_right"})
    config = FinetuneConfig(steps=1, lr=1e-12, **{**TINY, "validate_every": 1})  # the weights stay where they start
    seen: list[tuple[int, float]] = []
    model = finetune(
        [case],
        labels,
        tmp_path / "m",
        config,
        validation=[case],
        init=base,
        device="cpu",
        validating=lambda step, done: seen.append((step, done)),
    )
    assert seen[-1] == (1, 1.0)  # the validation pass reported its slices as it went
    assert [done for _, done in seen] == sorted(done for _, done in seen)
    card = read_card(model)
    assert card.labels is not None
    assert {v: card.labels[v].name for v in card.labels} == {5: "liver", 9: "kidney_right"}  # the base's 5 kept
    assert card.training["dataset_labels"] == {"7": "liver", "9": "kidney_right"}
    assert card.training["head_from_base"] == ["liver"]
    mine, _ = load_model(model)
    theirs, _ = load_model(base)
    for name in ("weight", "bias"):
        new, old = getattr(mine.final_conv, name).detach(), getattr(theirs.final_conv, name).detach()
        torch.testing.assert_close(new[0], old[0])  # background
        torch.testing.assert_close(new[1], old[2])  # liver: the base's third channel, the candidate's second
        assert not torch.allclose(new[2], old[1])  # the right kidney starts fresh, not from the spleen
    assert card.metrics is not None
    assert card.metrics["labels"]["matched"] == {
        "liver": {"model": 5, "reference": 7},
        "kidney_right": {"model": 9, "reference": 9},
    }
    assert set(card.metrics["dice"]) == {"liver", "kidney_right"}
    prediction = Predictor.from_dir(model, device="cpu").predict(image)
    assert set(np.unique(prediction.array)) <= {0, 5, 9}


def test_a_numbering_gives_the_values_of_the_model_name(small_case, tmp_path: Path):
    production = LabelTable.from_names({1: "liver", 2: "spleen", 3: "stomach", 4: "aorta"})
    labels = LabelTable.from_names({5: "liver", 1: "spleen"})
    config = FinetuneConfig(steps=1, **TINY)
    model = finetune([small_case], labels, tmp_path / "m", config, validation=[], numbering=production)
    card = read_card(model)
    assert card.labels is not None
    assert {v: card.labels[v].name for v in card.labels} == {1: "liver", 2: "spleen"}
    assert card.labels[1].color == production[1].color


def test_a_structure_twice_in_the_dataset_is_refused(small_case, tmp_path: Path):
    labels = LabelTable.from_names({5: "liver", 6: "Liver"})
    with pytest.raises(LabelMismatch, match="both 'liver'"):
        finetune(
            [small_case],
            labels,
            tmp_path / "m",
            FinetuneConfig(steps=1, **TINY),
            validation=[],
            numbering=LabelTable.from_names({1: "liver"}),
        )


def test_from_scratch_the_backbone_rate_applies_to_the_layers_a_base_would_give(small_case, tmp_path: Path):
    """The learning-rate control: scratch at factor 3 trains every layer but the output layer at 3x.
    Factor 1 is the default from scratch (the same weights as not asking), and the output layer's
    rate is not the factor's: after one step from the same start, only the other layers differ."""
    labels = LabelTable.from_names({5: "liver", 1: "spleen"})

    def weights(name: str, factor: float | None) -> dict[str, torch.Tensor]:
        config = FinetuneConfig(steps=1, backbone_lr_factor=factor, **TINY)
        model = finetune([small_case], labels, tmp_path / name, config, validation=[], device="cpu")
        assert read_card(model).training["config"]["backbone_lr_factor"] == (1.0 if factor is None else factor)
        return load_model(model)[0].state_dict()

    asked, default, tripled = weights("one", 1.0), weights("default", None), weights("three", 3.0)
    assert all(torch.equal(asked[k], default[k]) for k in asked)
    changed = {k for k in asked if not torch.equal(asked[k], tripled[k])}
    assert changed
    assert not any(k.startswith("final_conv.") for k in changed), changed


def test_a_snapshot_sees_the_network_after_every_step_and_the_last_is_the_model(small_case, tmp_path: Path):
    kept: dict[int, dict[str, torch.Tensor]] = {}

    def keep(step: int, net: torch.nn.Module) -> None:
        kept[step] = {name: value.detach().clone() for name, value in net.state_dict().items()}

    config = FinetuneConfig(steps=3, **TINY)
    labels = LabelTable.from_names({5: "liver", 1: "spleen"})
    model = finetune([small_case], labels, tmp_path / "m", config, validation=[], device="cpu", snapshot=keep)
    assert sorted(kept) == [1, 2, 3]
    saved = load_model(model, device="cpu")[0].state_dict()
    assert all(torch.equal(saved[name], kept[3][name]) for name in saved)
    assert not all(torch.equal(kept[1][name], kept[3][name]) for name in saved)  # the steps moved the weights
