"""Geometry problems in slice stacks: each refused with its kind and a message that says where."""

from __future__ import annotations

import pytest

from lrc.io import GeometryError, read_images, read_volume
from tests.dicom_factory import line

# (case, positions, kind, words the message must contain)
CASES = [
    ("missing slice", [(-25.0, -25.0, z) for z in (0, 2, 4, 8, 10)], "missing_slices", ["gap of 4.00 mm", "1 slice"]),
    ("uneven spacing", [(-25.0, -25.0, z) for z in (0, 2, 5, 7, 9)], "nonuniform_spacing", ["3.000 mm", "2.000 mm"]),
    (
        "positions off a line",
        [(-25.0, -25.0, 0), (-25.0, -25.0, 2), (-10.0, -25.0, 4), (-25.0, -25.0, 6)],
        "bad_orientation",
        ["do not lie on a line"],
    ),
    (
        "gantry tilt",
        [(-25.0 + 0.5 * k, -25.0, 2.0 * k) for k in range(4)],
        "gantry_tilt",
        ["14.04 degrees", "correct_tilt"],
    ),
]


@pytest.mark.parametrize(("case", "positions", "kind", "words"), CASES, ids=[c[0] for c in CASES])
def test_geometry_refused(make_series, case: str, positions, kind: str, words: list[str]):
    result = read_images(make_series(positions))
    assert not result.volumes
    (error,) = result.errors
    assert isinstance(error, GeometryError)
    assert error.kind == kind
    for word in words:
        assert word in str(error)


def test_duplicate_positions_of_different_instances(make_series, tmp_path):
    make_series(line(3), folder="s", series_uid="1.2.826.0.1.3680043.9.7")
    make_series(line(3)[1:2], folder="s/phase2", series_uid="1.2.826.0.1.3680043.9.7")
    with pytest.raises(GeometryError, match="occur twice") as info:
        read_volume(tmp_path / "s")
    assert info.value.kind == "duplicate_positions"


def test_pydicom_stray_slice_set(shared_data):
    """Real head CT slices at z = -99.48, 103.02, 104.27, 105.52: one stray slice 200 mm away."""
    with pytest.raises(GeometryError, match="gap of 202.50 mm") as info:
        read_volume(shared_data / "dicom" / "seg_highdicom" / "pydicom_CT2")
    assert info.value.kind == "missing_slices"


def test_one_bad_series_does_not_hide_the_others(make_series, tmp_path):
    make_series(line(3), folder="in/good")
    make_series([(-25.0, -25.0, z) for z in (0, 2, 5, 7)], folder="in/bad")
    result = read_images([tmp_path / "in"])
    assert len(result.volumes) == 1
    assert len(result.errors) == 1


def test_geometry_error_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(GeometryError("gantry_tilt", "tilted")))
    assert (error.kind, str(error)) == ("gantry_tilt", "tilted")
