"""Dice and HD95 against answers worked out by hand, and structures scored by name, not by number."""

from __future__ import annotations

import numpy as np
import pytest

from lrc.evaluate import dice, evaluate, hd95, mean_dice, summarize
from lrc.io import Volume
from lrc.io.labels import LabelTable
from lrc.label_match import match_labels

SHAPE = (12, 10, 8)


def box(lo: tuple[int, int, int], hi: tuple[int, int, int], shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


def voxels(*points: tuple[int, int, int]) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    for point in points:
        mask[point] = True
    return mask


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        (box((0, 0, 0), (4, 4, 4)), box((0, 0, 0), (4, 4, 4)), 1.0),
        (box((0, 0, 0), (4, 4, 4)), box((2, 0, 0), (6, 4, 4)), 0.5),  # 32 of 64 + 64 voxels shared
        (box((0, 0, 0), (2, 2, 2)), box((0, 0, 0), (2, 2, 4)), 2 * 8 / (8 + 16)),
        (box((0, 0, 0), (2, 2, 2)), box((5, 5, 5), (7, 7, 7)), 0.0),
        (box((0, 0, 0), (2, 2, 2)), np.zeros(SHAPE, dtype=bool), 0.0),  # found where the reference has none
        (np.zeros(SHAPE, dtype=bool), box((0, 0, 0), (2, 2, 2)), 0.0),  # missed
        (np.zeros(SHAPE, dtype=bool), np.zeros(SHAPE, dtype=bool), None),  # nothing to score
    ],
)
def test_dice_known_answers(prediction: np.ndarray, reference: np.ndarray, expected: float | None):
    assert dice(prediction, reference) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("prediction", "reference", "spacing", "expected"),
    [
        (box((0, 0, 0), (4, 4, 4)), box((0, 0, 0), (4, 4, 4)), (1.0, 1.0, 1.0), 0.0),
        (voxels((0, 0, 0)), voxels((3, 0, 0)), (2.0, 1.0, 1.0), 6.0),  # 3 voxels of 2 mm, both ways
        (voxels((0, 0, 0)), voxels((0, 0, 3)), (2.0, 1.0, 2.5), 7.5),  # the slice spacing counts
        # distances 0 (A to B), then 0 and 4 (B to A): the 95th percentile of [0, 0, 4] is 0 + 0.9 * 4
        (voxels((0, 0, 0)), voxels((0, 0, 0), (4, 0, 0)), (1.0, 1.0, 1.0), 3.6),
        (voxels((0, 0, 0)), np.zeros(SHAPE, dtype=bool), (1.0, 1.0, 1.0), None),
        (np.zeros(SHAPE, dtype=bool), np.zeros(SHAPE, dtype=bool), (1.0, 1.0, 1.0), None),
    ],
)
def test_hd95_known_answers(prediction, reference, spacing, expected):
    assert hd95(prediction, reference, spacing) == (None if expected is None else pytest.approx(expected))


def surface_points(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Mask voxels with a 6-neighbour outside the mask (or at the edge), in mm: written out by hand."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for step in (-1, 1):
            inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(mask & ~inner) * spacing


def test_hd95_equals_brute_force_over_surface_pairs():
    rng = np.random.default_rng(7)
    spacing = np.array([0.8, 1.2, 3.0])
    for _ in range(5):
        a = box(tuple(rng.integers(0, 4, 3)), tuple(rng.integers(5, 8, 3)))
        b = box(tuple(rng.integers(2, 5, 3)), tuple(rng.integers(6, 8, 3)))
        pa, pb = surface_points(a, spacing), surface_points(b, spacing)
        pairwise = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=2)
        expected = np.percentile(np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)]), 95)
        assert hd95(a, b, tuple(spacing)) == pytest.approx(expected)


def test_structures_are_scored_by_name_whatever_their_numbers():
    model = LabelTable.from_names({1: "liver", 2: "spleen", 3: "stomach"})
    reference = LabelTable.from_names({5: "liver", 1: "spleen", 52: "aorta"})  # TotalSegmentator's values
    liver, spleen = box((0, 0, 0), (4, 4, 4)), box((6, 6, 0), (9, 9, 4))
    predicted = np.zeros(SHAPE, dtype=np.uint8)
    predicted[liver], predicted[spleen] = 1, 2
    truth = np.zeros(SHAPE, dtype=np.uint8)
    truth[liver], truth[box((6, 6, 0), (9, 9, 2))] = 5, 1  # half the spleen: Dice 2 * 18 / (36 + 18)
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    labels = match_labels(model, reference)
    metrics = evaluate(Volume(predicted, affine), Volume(truth, affine), labels)
    assert set(metrics) == {"liver", "spleen"}  # stomach (model only) and aorta (reference only) not scored
    assert metrics["liver"] == {"dice": 1.0, "hd95": 0.0}
    assert metrics["spleen"]["dice"] == pytest.approx(2 * 18 / 54)
    assert metrics["spleen"]["hd95"] == pytest.approx(6.0)  # the missing half: 2 slices of 3 mm away
    assert (labels.model_only, labels.reference_only) == (("stomach",), ("aorta",))
    by_number = evaluate(Volume(predicted, affine), Volume(truth, affine), match_labels(model, model))
    assert by_number["liver"]["dice"] == 0.0  # what matching by value would have said


def test_summaries_leave_out_cases_with_nothing_to_score():
    per_case = [
        {"liver": {"dice": 0.8, "hd95": 4.0}, "spleen": {"dice": None, "hd95": None}},
        {"liver": {"dice": 0.6, "hd95": None}, "spleen": {"dice": 0.5, "hd95": 2.0}},
    ]
    summary = summarize(per_case)
    assert summary == {
        "liver": {"dice": pytest.approx(0.7), "hd95": 4.0},
        "spleen": {"dice": 0.5, "hd95": 2.0},
    }
    assert mean_dice(summary) == pytest.approx(0.6)
    assert mean_dice({"spleen": {"dice": None, "hd95": None}}) is None
