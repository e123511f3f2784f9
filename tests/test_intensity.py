"""Intensity windows."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lrc.intensity import IntensityWindow


def test_ct_window_maps_hu_to_unit_range():
    window = IntensityWindow.for_modality("CT")
    assert_allclose(window.apply(np.array([[[-1000, -160, 40, 240, 3000]]])), [[[0, 0, 0.5, 1, 1]]])


def test_mr_window_uses_percentiles():
    window = IntensityWindow.for_modality("MR")
    array = np.random.default_rng(0).normal(300, 50, (40, 40, 40)).astype(np.float32)
    low, high = window.bounds(array)
    expected_low, expected_high = np.percentile(array, [0.5, 99.5])
    assert abs(low - expected_low) < 5  # from a subsample: close, not exact
    assert abs(high - expected_high) < 5
    out = window.apply(array)
    assert out.min() == 0.0
    assert out.max() == 1.0


def test_json_round_trip_and_checks():
    window = IntensityWindow("percentile", 1.0, 99.0)
    assert IntensityWindow.from_json(window.to_json()) == window
    with pytest.raises(ValueError, match="low < high"):
        IntensityWindow("fixed", 10, 10)
    with pytest.raises(ValueError, match="percentiles"):
        IntensityWindow("percentile", 0, 101)
