"""The synthetic CT cohort: determinism, anatomy, intensities per phase, NIfTI and manifest round trips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import ndimage

from lrc.io.nifti import read_nifti
from lrc.io.volume import Volume
from lrc.manifest import load_manifest
from lrc.synthetic import (
    HU_RANGES,
    ORGANS,
    PHASES,
    PhantomConfig,
    describe_phantom,
    label_table,
    make_cohort,
    make_phantom,
    write_manifest,
)

# A coarse grid over the same field of view: the anatomy is in millimetres, so it keeps every organ.
SMALL = PhantomConfig(shape=(64, 64, 24), spacing=(4.0, 4.0, 8.0), slice_thickness=(5.0, 10.0))
VALUE = {name: value for value, name in ORGANS.items()}


def _first_seed(phase: str) -> int:
    return next(seed for seed in range(100) if describe_phantom(seed).phase == phase)


@pytest.fixture(scope="module")
def phantoms() -> dict[int, tuple[Volume, Volume]]:
    """Default-configuration phantoms, one per contrast phase at least."""
    seeds = sorted({0, 1, *(_first_seed(phase) for phase in PHASES)})
    return {seed: make_phantom(seed) for seed in seeds}


def _volume_ml(labels: Volume, value: int) -> float:
    return float((labels.array == value).sum() * np.prod(labels.spacing) / 1000)


def _centroid(labels: Volume, value: int) -> np.ndarray:
    """Centroid in world (RAS) mm."""
    index = np.argwhere(labels.array == value).mean(axis=0)
    return (labels.affine @ np.append(index, 1.0))[:3]


def test_same_seed_gives_identical_arrays() -> None:
    first, second = make_phantom(5, SMALL), make_phantom(5, SMALL)
    for a, b in zip(first, second, strict=True):
        assert_array_equal(a.array, b.array)
        assert_array_equal(a.affine, b.affine)


def test_different_seeds_give_different_anatomy() -> None:
    config = PhantomConfig(shape=(64, 64, 24), spacing=(4.0, 4.0, 8.0), slice_thickness=None)
    (_, a), (_, b) = make_phantom(1, config), make_phantom(2, config)
    assert a.shape == b.shape
    assert (a.array != b.array).mean() > 0.02


def test_image_and_labels_share_a_centred_ras_grid(phantoms: dict[int, tuple[Volume, Volume]]) -> None:
    config = PhantomConfig()
    for image, labels in phantoms.values():
        assert image.array.dtype == np.int16
        assert image.modality == "CT"
        assert labels.array.dtype == np.uint8
        assert image.shape == labels.shape
        assert image.shape[:2] == config.shape[:2]
        assert_array_equal(image.affine, labels.affine)
        assert_array_equal(image.affine[:3, :3], np.diag(image.spacing))
        assert image.spacing[:2] == config.spacing[:2]
        assert 2.5 <= image.spacing[2] <= 5.0
        # The slice count follows the thickness so the covered length stays the same.
        assert abs(image.shape[2] * image.spacing[2] - 48 * 4.0) <= image.spacing[2]
        centre = image.affine @ np.append((np.asarray(image.shape) - 1) / 2, 1.0)
        assert np.allclose(centre[:3], 0.0)
        assert image.array.min() >= -1024
        assert image.array.max() > 300


def test_fixed_grid_without_slice_thickness_range() -> None:
    config = PhantomConfig(shape=(48, 40, 20), spacing=(5.0, 6.0, 9.0), slice_thickness=None)
    image, labels = make_phantom(3, config)
    assert image.shape == labels.shape == (48, 40, 20)
    assert image.spacing == pytest.approx((5.0, 6.0, 9.0))


def test_all_organs_present_with_plausible_volumes(phantoms: dict[int, tuple[Volume, Volume]]) -> None:
    plausible = {
        "liver": (300, 2000),
        "spleen": (20, 400),
        "right_kidney": (20, 300),
        "left_kidney": (20, 300),
        "aorta": (10, 150),
        "spine": (40, 400),
        "stomach": (15, 400),
        "bowel": (80, 1200),
    }
    for seed, (_, labels) in phantoms.items():
        assert set(np.unique(labels.array).tolist()) == {0, *ORGANS}, seed
        volumes = {name: _volume_ml(labels, value) for value, name in ORGANS.items()}
        assert max(volumes, key=lambda name: volumes[name]) == "liver", (seed, volumes)
        for name, (low, high) in plausible.items():
            assert low <= volumes[name] <= high, (seed, name, volumes[name])


def test_organs_lie_where_anatomy_puts_them(phantoms: dict[int, tuple[Volume, Volume]]) -> None:
    for seed, (_, labels) in phantoms.items():
        c = {name: _centroid(labels, value) for value, name in ORGANS.items()}
        # RAS: +x is patient left, +y anterior, +z superior.
        assert c["right_kidney"][0] < c["spine"][0] < c["left_kidney"][0], seed
        assert c["liver"][0] < c["spine"][0] < c["spleen"][0], seed
        assert c["stomach"][0] > c["spine"][0], seed
        assert c["aorta"][1] > c["spine"][1], seed  # anterior
        assert c["aorta"][0] > c["spine"][0], seed  # and left
        assert c["spleen"][1] < c["stomach"][1], seed
        assert c["liver"][2] > c["right_kidney"][2], seed
        assert c["liver"][2] > c["bowel"][2], seed


@pytest.mark.parametrize(
    ("name", "materials", "tolerance"),
    [
        ("liver", ("liver",), 15.0),  # vessels pull the mean a little
        ("spleen", ("spleen",), 8.0),
        ("aorta", ("artery",), 8.0),
        ("right_kidney", ("kidney_cortex", "kidney_medulla"), 8.0),
        ("left_kidney", ("kidney_cortex", "kidney_medulla"), 8.0),
    ],
)
@pytest.mark.parametrize("phase", PHASES)
def test_organ_intensities_follow_the_phase(
    phantoms: dict[int, tuple[Volume, Volume]], phase: str, name: str, materials: tuple[str, ...], tolerance: float
) -> None:
    seed = _first_seed(phase)
    info = describe_phantom(seed)
    image, labels = phantoms[seed]
    column = PHASES.index(phase)
    for material in materials:
        low, high = HU_RANGES[material][column]
        assert low <= info.hu[material] <= high
    interior = ndimage.binary_erosion(labels.array == VALUE[name], iterations=2)  # away from partial volume
    mean = float(image.array[interior].mean())
    drawn = [info.hu[m] for m in materials]
    assert min(drawn) - tolerance <= mean <= max(drawn) + tolerance, (seed, name, mean, drawn)


def test_non_contrast_intensities_overlap() -> None:
    """Intensity alone cannot tell liver, spleen, kidney, aorta and muscle apart without contrast."""
    column = PHASES.index("non-contrast")
    ranges = [HU_RANGES[m][column] for m in ("liver", "spleen", "kidney_cortex", "artery", "muscle")]
    assert max(low for low, _ in ranges) - min(high for _, high in ranges) < 30


def test_every_phase_is_drawn() -> None:
    assert {describe_phantom(seed).phase for seed in range(30)} == set(PHASES)


def test_cohort_round_trips_through_nifti_and_manifest(tmp_path: Path) -> None:
    cases = make_cohort([0, 1, 12], tmp_path / "cohort", SMALL)
    assert [case["image"] for case in cases] == ["image_000.nii.gz", "image_001.nii.gz", "image_012.nii.gz"]
    for case in cases:
        image, labels = make_phantom(case["seed"], SMALL)
        assert case["phase"] == describe_phantom(case["seed"], SMALL).phase
        read_image = read_nifti(tmp_path / "cohort" / case["image"])
        read_labels = read_nifti(tmp_path / "cohort" / case["label"])
        assert read_image.array.dtype == np.int16
        assert read_labels.array.dtype == np.uint8
        assert_array_equal(read_image.array, image.array)
        assert_array_equal(read_labels.array, labels.array)
        assert np.allclose(read_image.affine, image.affine)
        assert np.allclose(read_labels.affine, image.affine)
    path = write_manifest(tmp_path / "cohort" / "manifest.json", cases[:2], cases[2:], [], config=SMALL)
    manifest = load_manifest(path)
    assert {value: label.name for value, label in manifest.labels.items()} == ORGANS
    assert len(manifest.parts["train"]) == 2
    assert len(manifest.parts["validation"]) == 1
    assert manifest.parts["test"] == []
    image, labels = manifest.parts["validation"][0]
    assert_array_equal(labels.array, make_phantom(12, SMALL)[1].array)
    assert image.shape == labels.shape


def test_label_table_uses_the_project_codes() -> None:
    table = label_table()
    assert {value: label.name for value, label in table.items()} == ORGANS
    assert table[1].type[1] == "10200004"  # liver
    assert table[3].type[1] == "9846003"  # right kidney
    assert table[4].type[1] == "18639004"  # left kidney


def test_config_json_round_trip() -> None:
    assert PhantomConfig.from_json(SMALL.to_json()) == SMALL
    fixed = PhantomConfig(slice_thickness=None, contrast_phases=("arterial",))
    assert PhantomConfig.from_json(fixed.to_json()) == fixed
    assert {describe_phantom(seed, fixed).phase for seed in range(5)} == {"arterial"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shape": (8, 64, 24)}, "shape"),
        ({"spacing": (0.0, 2.0, 4.0)}, "spacing"),
        ({"noise_std": (10.0, 5.0)}, "noise_std"),
        ({"contrast_phases": ("delayed",)}, "contrast_phases"),
        ({"deformation": -1.0}, "deformation"),
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhantomConfig(**changes)  # type: ignore[arg-type]


def test_module_needs_neither_torch_nor_monai() -> None:
    code = "import sys, lrc.synthetic; sys.exit(bool({'torch', 'monai'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
