"""Fine-tuning end to end on the real CT: labels met by name (the values a model writes, the output channels that
carry over), the fixed split, validation and inference tiles, augmentation, the settings refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lrc.evaluate import evaluate, mean_dice
from lrc.infer import Predictor
from lrc.io import Volume, read_nifti
from lrc.io.labels import LabelTable
from lrc.label_match import LabelMatch, LabelMismatch
from lrc.model_dirs.store import load_model, read_card
from lrc.train.finetune import finetune, fixed_split
from lrc.train.finetune_config import FinetuneConfig
from tests.train.recipes import LABELS, SMALL

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


def test_fixed_split_ignores_order(subject_a, subject_c):
    cases = [subject_a, subject_c]
    train_1, held_1 = fixed_split(cases, 0.2)
    _, held_2 = fixed_split(cases[::-1], 0.2)
    assert len(held_1) == 1
    assert cases[held_1[0]][0] is cases[::-1][held_2[0]][0]  # the same case, whatever the order
    assert len(train_1) == 1
    assert fixed_split([subject_a], 0.2) == ([0], [])


def test_the_inference_defaults_by_the_kind_of_base(pretrained: Path, subject_a, tmp_path: Path):
    """Tiles of the training patch from a self-supervised model (docs/research/REPORT.md), whole slices from
    scratch, from a segmentation model as it predicts; a given tile wins; the card records it and validation and the
    predictor follow it."""
    config = FinetuneConfig(steps=2, batch_size=2, patch=48)

    def tuned(name: str, init: Path | None, **changes: object) -> Path:
        held_out = changes.pop("validation", [])
        tuning = replace(config, **changes)
        return finetune([subject_a], LABELS, tmp_path / name, tuning, validation=held_out, init=init, device="cpu")

    model = tuned("from-pretrained", pretrained, validation=[subject_a], validate_every=1)
    card = read_card(model)
    assert (card.inference_tile, card.training["config"]["tile"]) == (48, "patch")
    predictor = Predictor.from_dir(model, device="cpu")
    assert (predictor.tile, predictor.with_tile("slice").tile, predictor.with_tile("model").tile) == (48, None, 48)
    tiles, whole = (
        mean_dice(evaluate(p.predict(subject_a[0]), subject_a[1], LabelMatch.identity(LABELS), distances=False))
        for p in (predictor, predictor.with_tile(None))
    )
    assert card.metrics is not None
    assert card.metrics["mean_dice"] == pytest.approx(tiles)  # validation predicted over tiles
    assert tiles != pytest.approx(whole)

    assert read_card(tuned("given", pretrained, tile="slice")).inference_tile is None
    assert read_card(tuned("from-segmentation", model)).inference_tile == 48  # as its base predicts
    scratch = {"canvas": 64, "spacing": 6.0, "features": SMALL}
    from_scratch = tuned("scratch", None, **scratch)
    assert read_card(from_scratch).inference_tile is None
    assert read_card(tuned("from-scratch-model", from_scratch)).inference_tile is None
    assert read_card(tuned("scratch-32", None, tile=32, **scratch)).inference_tile == 32
    for bad, message in (("tiles", "tile must be one of"), (40, "multiple of 16")):
        with pytest.raises(ValueError, match=message):
            FinetuneConfig(tile=bad)
    with pytest.raises(ValueError, match="2D only"):
        FinetuneConfig(spatial_dims=3, tile="patch")


def test_scratch_ignores_the_warm_up(subject_a, tmp_path: Path):
    # no init: nothing is transferred, so a warm-up must not freeze anything (the backbone's rate does
    # apply from scratch, to the same layers: tests/train/test_finetune.py)
    config = FinetuneConfig(steps=2, batch_size=2, patch=48, canvas=64, spacing=6.0, features=SMALL)
    runs = [
        finetune([subject_a], LABELS, tmp_path / name, replace(config, **extra), validation=[], device="cpu")
        for name, extra in (("plain", {}), ("frozen", {"warmup_steps": 1}))
    ]
    assert read_card(runs[0]).weights_sha256 == read_card(runs[1]).weights_sha256


def test_finetune_with_rotated_and_scaled_patches(subject_a, tmp_path: Path):
    config = FinetuneConfig(
        steps=2, batch_size=2, patch=48, canvas=64, spacing=6.0, features=SMALL, augment_scale=[0.8, 1.25]
    )
    plain = finetune([subject_a], LABELS, tmp_path / "plain", config, validation=[], device="cpu")
    turned = replace(config, augment_rotate=20.0)
    model = finetune([subject_a], LABELS, tmp_path / "turned", turned, validation=[], device="cpu")
    written = read_card(model).training["config"]
    assert (written["augment_scale"], written["augment_rotate"]) == ([0.8, 1.25], 20.0)
    assert read_card(model).weights_sha256 != read_card(plain).weights_sha256  # the rotation reached training


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"transfer": "decoder"}, "transfer must be one of"),
        ({"warmup_steps": 10}, "warmup_steps must be in"),
        ({"warmup_steps": -1}, "warmup_steps must be in"),
        ({"reinit": ("down_5",)}, r"reinit names U-Net stages \(conv_0, .*got \['down_5'\]"),
        ({"reinit": ("final_conv",)}, "reinit names U-Net stages"),
        ({"transfer": "encoder", "reinit": ("conv_0", "down_1", "down_2", "down_3", "down_4")}, "nothing to transfer"),
        ({"spatial_dims": 3, "augment_rotate": 10.0}, "are 2D only"),
        ({"augment_scale": (1.2, 0.8)}, "augment_scale must be 0 < min <= max <= 4"),
    ],
)
def test_finetune_config_refuses_bad_transfer_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(steps=10, **changes)


@pytest.mark.parametrize("changes", [{"shrink": 0.0}, {"shrink": -1.0}, {"perturb": -0.1}])
def test_finetune_config_refuses_bad_shrink_and_perturb(changes):
    with pytest.raises(ValueError, match="shrink > 0 and perturb >= 0"):
        FinetuneConfig(**changes)


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
