"""Pre-train -> fine-tune -> segment on the real CT data, small and on the CPU."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lrc.evaluate import evaluate, mean_dice
from lrc.infer import Predictor
from lrc.io import Volume, read_nifti, read_volume
from lrc.io.labels import LabelTable
from lrc.label_match import LabelMatch
from lrc.models.store import read_card
from lrc.train.finetune import finetune, fixed_split
from lrc.train.finetune_config import SELF_SUPERVISED_LR_FACTOR, FinetuneConfig
from lrc.train.pretrain import PretrainConfig, pretrain

SMALL = (8, 8, 16, 16, 32, 8)
LABELS = LabelTable.from_names({5: "liver", 1: "spleen"})


@pytest.fixture(scope="module")
def subject_c(shared_data: Path) -> tuple[Volume, Volume]:
    """The Siemens JPEG 2000 DICOM CT (LPS) and its label map (LAS NIfTI)."""
    folder = shared_data / "dicom" / "ct_series_totalseg"
    return read_volume(sorted(folder.glob("CT.*"))), read_nifti(folder / "example_seg_dicom.nii.gz")


def small_pretrain(method: str = "moco+lrc", seed: int = 0, steps: int = 3) -> PretrainConfig:
    return PretrainConfig(
        method=method,
        steps=steps,
        batch_size=4,
        spacing=6.0,
        canvas=64,
        view_size=48,
        features=SMALL,
        queue_size=64,
        regions_per_image=8,
        pixels_per_region=4,
        seed=seed,
    )


@pytest.fixture(scope="module")
def pretrained(subject_a, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "pretrained"
    return pretrain([subject_a[0]], out, small_pretrain(), device="cpu", cache_dir=out.parent / "cache")


def test_pretrained_card(pretrained: Path, subject_a):
    card = read_card(pretrained)
    assert card.kind == "pretrained"
    assert card.training["method"] == "moco+lrc"
    assert card.training["steps"] == 3
    assert card.training["seeds"] == {"torch": 0, "numpy": 0}
    assert set(card.training["final"]) >= {"global", "local", "loss"}
    assert card.arguments["features"] == list(SMALL)
    assert card.spacing == (6.0, 6.0, None)
    assert len(card.training["data"]) == 1


def test_pretraining_is_deterministic_under_a_seed(subject_a, tmp_path: Path):
    cache = tmp_path / "cache"
    runs = [
        pretrain([subject_a[0]], tmp_path / f"m{k}", small_pretrain("lrc", seed), device="cpu", cache_dir=cache)
        for k, seed in enumerate((7, 7, 8))
    ]
    hashes = [read_card(r).weights_sha256 for r in runs]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


def test_finetune_and_segment(pretrained: Path, subject_a, subject_c, tmp_path: Path):
    config = FinetuneConfig(steps=6, batch_size=4, patch=48, validate_every=3, seed=0)
    model = finetune(
        [subject_a], LABELS, tmp_path / "seg", config, validation=[subject_c], init=pretrained, device="cpu"
    )
    card = read_card(model)
    assert card.kind == "segmentation"
    assert card.parent is not None
    assert card.parent["weights_sha256"] == read_card(pretrained).weights_sha256
    assert card.spacing == (6.0, 6.0, None)  # inherited from the pre-trained model
    assert card.metrics is not None
    assert set(card.metrics["dice"]) == {"liver", "spleen"}
    assert 0.0 <= card.metrics["mean_dice"] <= 1.0
    assert card.training["split"]["validation"]
    assert card.training["split"]["train"]
    assert card.training["best_step"] in (3, 6)
    assert json.loads((model / "model.json").read_text())["labels"]["5"]["type"][1] == "10200004"

    image, _ = subject_c
    labels = Predictor.from_dir(model, device="cpu").predict(image)
    assert labels.shape == image.shape
    assert_allclose(labels.affine, image.affine)
    assert labels.source is image.source
    assert set(np.unique(labels.array)) <= {0, 1, 5}


def test_predictor_keeps_any_orientation(pretrained: Path, subject_a, tmp_path: Path):
    config = FinetuneConfig(steps=2, batch_size=2, patch=48, validate_every=100)
    model = finetune([subject_a], LABELS, tmp_path / "seg", config, validation=[], init=pretrained, device="cpu")
    predictor = Predictor.from_dir(model, device="cpu")
    image = subject_a[0]
    flipped = Volume(
        image.array[::-1, :, ::-1].copy(),
        image.affine
        @ np.array([[-1, 0, 0, image.shape[0] - 1], [0, 1, 0, 0], [0, 0, -1, image.shape[2] - 1], [0, 0, 0, 1.0]]),
        "CT",
    )
    direct = predictor.predict(image)
    via_flip = predictor.predict(flipped)
    assert_allclose(via_flip.affine, flipped.affine)
    assert np.array_equal(via_flip.array[::-1, :, ::-1], direct.array)  # same world, same answer


def test_fixed_split_ignores_order(subject_a, subject_c):
    cases = [subject_a, subject_c]
    train_1, held_1 = fixed_split(cases, 0.2)
    _, held_2 = fixed_split(cases[::-1], 0.2)
    assert len(held_1) == 1
    assert cases[held_1[0]][0] is cases[::-1][held_2[0]][0]  # the same case, whatever the order
    assert len(train_1) == 1
    assert fixed_split([subject_a], 0.2) == ([0], [])


def test_method_checks():
    with pytest.raises(ValueError, match="method must be one of"):
        PretrainConfig(method="simclr")
    with pytest.raises(ValueError, match="multiples of 16"):
        PretrainConfig(view_size=100)
    for momentum in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
            PretrainConfig(momentum=momentum)


def test_supervised_plus_lrc(subject_a, tmp_path: Path):
    config = small_pretrain("supervised+lrc")
    model = pretrain(
        [subject_a[0]],
        tmp_path / "sup",
        config,
        device="cpu",
        cache_dir=tmp_path / "cache",
        labels=[subject_a[1]],
        class_of={5: 1, 1: 2},
    )
    card = read_card(model)
    assert card.training["method"] == "supervised+lrc"
    assert set(card.training["final"]) >= {"supervised", "local"}
    assert card.arguments["out_channels"] == 3
    with pytest.raises(ValueError, match="needs label maps"):
        pretrain([subject_a[0]], tmp_path / "x", config, device="cpu")


def test_finetune_3d_and_predict(subject_a, subject_c, tmp_path: Path):
    config = FinetuneConfig(
        steps=3,
        batch_size=2,
        patch=32,
        patch_depth=16,
        spacing=6.0,
        canvas=64,
        spatial_dims=3,
        features=SMALL,
        validate_every=3,
    )
    model = finetune([subject_a], LABELS, tmp_path / "seg3d", config, validation=[subject_c], device="cpu")
    card = read_card(model)
    assert card.arguments["spatial_dims"] == 3
    assert card.spacing == (6.0, 6.0, 6.0)
    assert card.training["patch"] == [32, 32, 16]
    assert card.metrics is not None
    image = subject_c[0]
    labels = Predictor.from_dir(model, device="cpu").predict(image)  # sliding window over the volume
    assert labels.shape == image.shape
    assert_allclose(labels.affine, image.affine)


def test_3d_finetune_refuses_2d_weights(pretrained: Path, subject_a, tmp_path: Path):
    config = FinetuneConfig(steps=1, patch=32, patch_depth=16, canvas=64, spatial_dims=3)
    with pytest.raises(ValueError, match="2D network; this fine-tuning is 3D"):
        finetune([subject_a], LABELS, tmp_path / "x", config, validation=[], init=pretrained, device="cpu")


def test_3d_pretrain_then_3d_finetune(subject_a, subject_c, tmp_path: Path):
    config = small_pretrain("moco+lrc")
    config.spatial_dims, config.spacing_z, config.depth, config.view_depth, config.batch_size = 3, 6.0, 24, 16, 2
    config.view_size = 32
    pretrained = pretrain([subject_a[0]], tmp_path / "pre3d", config, device="cpu", cache_dir=tmp_path / "cache")
    card = read_card(pretrained)
    assert card.arguments["spatial_dims"] == 3
    assert card.spacing == (6.0, 6.0, 6.0)
    assert card.training["final"]["regions"] > 0  # regions were found in the 3D views
    assert np.isfinite(card.training["final"]["local"])
    tune = FinetuneConfig(steps=2, batch_size=2, patch=32, patch_depth=16, spatial_dims=3, validate_every=2)
    model = finetune(
        [subject_a], LABELS, tmp_path / "seg3d", tune, validation=[subject_c], init=pretrained, device="cpu"
    )
    tuned = read_card(model)
    assert tuned.spacing == (6.0, 6.0, 6.0)  # the pre-trained grid, depth included
    assert tuned.parent is not None
    assert tuned.parent["weights_sha256"] == card.weights_sha256
    with pytest.raises(ValueError, match="3D network; this fine-tuning is 2D"):
        finetune(
            [subject_a], LABELS, tmp_path / "x", FinetuneConfig(steps=1), validation=[], init=pretrained, device="cpu"
        )


def test_3d_supervised_lrc_is_refused():
    with pytest.raises(ValueError, match="2D only"):
        PretrainConfig(method="supervised+lrc", spatial_dims=3)


def _weights(model: Path, prefix: tuple[str, ...]) -> dict[str, np.ndarray]:
    from lrc.models.store import load_model

    net, _ = load_model(model)
    return {k: v.numpy() for k, v in net.state_dict().items() if k.startswith(prefix)}


ENCODER = ("conv_0.", "down_1.", "down_2.", "down_3.", "down_4.")
DECODER = ("upcat_1.", "upcat_2.", "upcat_3.", "upcat_4.")


@pytest.mark.parametrize(
    ("transfer", "reinit", "kept"),
    [
        ("all", (), ENCODER + DECODER),
        ("encoder", (), ENCODER),
        ("all", ("down_4", "upcat_4"), ENCODER[:4] + DECODER[:3]),
        ("encoder", ("down_3", "down_4"), ENCODER[:3]),
    ],
)
def test_transfer_gives_the_chosen_layers(pretrained: Path, subject_a, tmp_path: Path, transfer, reinit, kept):
    # a factor of 0 keeps every transferred layer exactly as pre-trained; the others train from random
    config = FinetuneConfig(steps=2, batch_size=2, patch=48, backbone_lr_factor=0.0, transfer=transfer, reinit=reinit)
    model = finetune([subject_a], LABELS, tmp_path / "seg", config, validation=[], init=pretrained, device="cpu")
    before, after = _weights(pretrained, ENCODER + DECODER), _weights(model, ENCODER + DECODER)
    assert before.keys() == after.keys()
    assert all(any(k.startswith(stage) for k in before) for stage in ENCODER + DECODER)
    for name, value in before.items():
        same = np.array_equal(value, after[name])
        assert same == name.startswith(kept), name
    written = read_card(model).training["config"]
    assert (written["transfer"], written["reinit"]) == (transfer, list(reinit))


def test_the_rate_of_transferred_layers_defaults_by_the_kind_of_base(pretrained: Path, subject_a, tmp_path: Path):
    """3x the rate from a self-supervised model (docs/research/REPORT.md), 1x from a segmentation model or scratch;
    the card records the factor used, and a given factor wins."""
    config = FinetuneConfig(steps=2, batch_size=2, patch=48)
    assert config.backbone_lr_factor is None

    def factor(name: str, init: Path | None, **changes: object) -> float:
        model = finetune(
            [subject_a], LABELS, tmp_path / name, replace(config, **changes), validation=[], init=init, device="cpu"
        )
        return float(read_card(model).training["config"]["backbone_lr_factor"])

    assert factor("from-pretrained", pretrained) == SELF_SUPERVISED_LR_FACTOR == 3.0
    assert factor("given", pretrained, backbone_lr_factor=0.5) == 0.5
    assert factor("from-segmentation", tmp_path / "from-pretrained") == 1.0
    assert factor("scratch", None, canvas=64, spacing=6.0, features=SMALL) == 1.0
    with pytest.raises(ValueError, match="backbone_lr_factor must be >= 0"):
        FinetuneConfig(backbone_lr_factor=-1.0)


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
    ("step", "start", "expected"),
    [(0, 0, 1.0), (50, 0, 0.5), (100, 0, 0.0), (0, 20, 0.0), (19, 20, 0.0), (20, 20, 1.0), (60, 20, 0.5)],
)
def test_cosine_schedule_with_warmup(step: int, start: int, expected: float):
    from lrc.train.finetune import _cosine

    assert_allclose(_cosine(step, 100, start), expected, atol=1e-12)


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


def test_shrink_and_perturb_start_from_a_mix_of_pretrained_and_fresh_weights(
    pretrained: Path, subject_a, tmp_path: Path
):
    # a learning-rate factor of 0 keeps the transferred layers at their (mixed) starting values
    base = FinetuneConfig(steps=1, batch_size=2, patch=48, backbone_lr_factor=0.0)
    runs = {
        name: _weights(
            finetune([subject_a], LABELS, tmp_path / name, replace(base, **extra), validation=[], init=pretrained),
            ENCODER + DECODER,
        )
        for name, extra in (("shrunk", {"shrink": 0.5}), ("mixed", {"shrink": 0.5, "perturb": 0.5}))
    }
    before = _weights(pretrained, ENCODER + DECODER)
    for name, value in before.items():
        assert_allclose(runs["shrunk"][name], 0.5 * value, rtol=1e-6, atol=1e-8)
        fresh = (runs["mixed"][name] - 0.5 * value) / 0.5
        if ".adn.N." in name:  # instance-norm affine parameters: checked below
            continue
        assert not np.allclose(fresh, 0.0), name  # a fresh initialisation was mixed in, not nothing
        assert not np.allclose(fresh, value), name  # and not the pre-trained weights again
    norm_weights = [n for n in before if n.endswith(".adn.N.weight")]
    assert norm_weights  # instance-norm scales start at 1 in a fresh network
    for name in norm_weights:
        assert_allclose(runs["mixed"][name], 0.5 * before[name] + 0.5, rtol=1e-6)


def test_anchor_weight_holds_transferred_layers_near_their_pretrained_values(
    pretrained: Path, subject_a, tmp_path: Path
):
    """L2-SP as a decoupled decay: at rate x weight = 1 a step ends on the pre-trained values; at 0.5 the
    layers end nearer them than without the anchor (same seed, same batches)."""
    base = FinetuneConfig(steps=3, batch_size=2, patch=48, lr=1e-3, backbone_lr_factor=1.0)

    def distance(name: str, **changes: object) -> tuple[float, dict[str, np.ndarray]]:
        run = finetune([subject_a], LABELS, tmp_path / name, replace(base, **changes), validation=[], init=pretrained)
        after = _weights(run, ENCODER + DECODER)
        weights = [n for n in before if not n.endswith(("running_mean", "running_var"))]
        return sum(float(np.sum((after[n] - before[n]) ** 2)) for n in weights), after

    before = _weights(pretrained, ENCODER + DECODER)
    plain, _ = distance("plain")
    held, _ = distance("held", anchor_weight=500.0)  # the first step's rate 1e-3: lerp 0.5
    assert 0 < held < plain
    _, pinned = distance("pinned", steps=1, anchor_weight=1000.0)
    for name, value in before.items():
        assert_allclose(pinned[name], value, rtol=1e-6, atol=1e-8)
    assert read_card(tmp_path / "held").training["config"]["anchor_weight"] == 500.0
    with pytest.raises(ValueError, match="exceeds 1"):
        replace(base, anchor_weight=2000.0)
    with pytest.raises(ValueError, match="exceeds 1"):  # the default factor counts at 3 (a self-supervised base)
        FinetuneConfig(lr=1e-3, anchor_weight=400.0)
    with pytest.raises(ValueError, match="anchor_weight must be >= 0"):
        FinetuneConfig(anchor_weight=-1.0)


@pytest.mark.parametrize("changes", [{"shrink": 0.0}, {"shrink": -1.0}, {"perturb": -0.1}])
def test_finetune_config_refuses_bad_shrink_and_perturb(changes):
    with pytest.raises(ValueError, match="shrink > 0 and perturb >= 0"):
        FinetuneConfig(**changes)


@pytest.mark.parametrize("method", ["moco", "moco+lrc"])
def test_decorrelation_penalty_joins_the_loss(subject_a, tmp_path: Path, method: str):
    config = replace(small_pretrain(method, steps=2), decorrelation_weight=2.0)
    model = pretrain([subject_a[0]], tmp_path / "m", config, device="cpu", cache_dir=tmp_path / "cache")
    final = read_card(model).training["final"]
    assert 0.0 <= final["correlation"] <= 1.0
    parts = final["global"] + final.get("local", 0.0) + 2.0 * final["correlation"]
    assert_allclose(final["loss"], parts, rtol=1e-4)
    with pytest.raises(ValueError, match="decorrelation_weight"):
        replace(config, decorrelation_weight=-1.0)


def test_fewer_negatives_change_the_local_loss_only(subject_a, tmp_path: Path):
    # same seed, same views and regions: the global loss of the first step is the same, the local one is not
    finals = {}
    variants = {"batch": {}, "image": {"local_negatives": "image"}, "margin": {"negative_margin": 0.05}}
    for name, change in variants.items():
        config = replace(small_pretrain("moco+lrc", steps=1), **change)
        model = pretrain([subject_a[0]], tmp_path / name, config, device="cpu", cache_dir=tmp_path / "cache")
        card = read_card(model)
        assert {k: card.training["config"][k] for k in change} == change
        finals[name] = card.training["final"]
    for name in ("image", "margin"):
        assert_allclose(finals["batch"]["global"], finals[name]["global"], rtol=1e-6)
        assert finals[name]["local"] < finals["batch"]["local"]  # fewer negatives in each softmax
    with pytest.raises(ValueError, match="local_negatives must be one of"):
        replace(config, local_negatives="volume")
    with pytest.raises(ValueError, match="negative_margin must be >= 0"):
        replace(config, negative_margin=-0.1)


@pytest.mark.parametrize("method", ["moco", "lrc"])
def test_restoration_joins_the_loss_and_its_head_is_not_saved(subject_a, tmp_path: Path, method: str):
    from lrc.models.store import load_model

    config = replace(small_pretrain(method, steps=2), restore_weight=3.0)
    model = pretrain([subject_a[0]], tmp_path / "m", config, device="cpu", cache_dir=tmp_path / "cache")
    final = read_card(model).training["final"]
    assert 0.0 < final["restore"] < 1.0  # mean squared error of [0, 1] images
    parts = final.get("global", 0.0) + final.get("local", 0.0) + 3.0 * final["restore"]
    assert_allclose(final["loss"], parts, rtol=1e-4)
    net, _ = load_model(model)
    assert not any("restore" in name for name in net.state_dict())  # a plain backbone, as without restoration
    for bad, message in (
        ({"restore_weight": -1.0}, "restore_weight >= 0"),
        ({"restore_mask": 1.0}, "restore_mask in"),
        ({"method": "supervised+lrc"}, "restoration is not combined"),
    ):
        with pytest.raises(ValueError, match=message):
            replace(config, **bad)
