"""lrc/train/slices.py and the other builders of training data: the ``preparing`` callback, the way to stop them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lrc.intensity import IntensityWindow
from lrc.io import Volume, read_nifti
from lrc.superpixels import SuperpixelCache
from lrc.train.blocks import build_region_volumes
from lrc.train.patches import build_volumes
from lrc.train.slices import Preparing, build_slices

WINDOW = IntensityWindow.for_modality("CT")
Builder = Callable[[list[tuple[Volume, Volume]], Path, Preparing], Any]


class Stop(Exception):
    """What a cancelled job's callback raises."""


@pytest.fixture(scope="module")
def cases(shared_data: Path) -> list[tuple[Volume, Volume]]:
    """The small real CT (30 slices) and its labels, twice."""
    folder = shared_data / "nifti" / "totalseg_ct_abdomen"
    case = (read_nifti(folder / "example_ct_sm.nii.gz", modality="CT"), read_nifti(folder / "example_seg.nii.gz"))
    return [case, case]


def _slices_with_superpixels(cases: list[tuple[Volume, Volume]], cache: Path, preparing: Preparing) -> Any:
    return build_slices([c[0] for c in cases], WINDOW, 6.0, 64, cache=SuperpixelCache(cache), preparing=preparing)


def _labelled_slices(cases: list[tuple[Volume, Volume]], cache: Path, preparing: Preparing) -> Any:
    images, labels = [c[0] for c in cases], [c[1] for c in cases]
    return build_slices(images, WINDOW, 6.0, 64, labels=labels, class_of={5: 1}, preparing=preparing)


def _region_volumes(cases: list[tuple[Volume, Volume]], cache: Path, preparing: Preparing) -> Any:
    return build_region_volumes(
        [c[0] for c in cases], WINDOW, (6.0, 6.0), 64, SuperpixelCache(cache), preparing=preparing
    )


def _volumes(cases: list[tuple[Volume, Volume]], cache: Path, preparing: Preparing) -> Any:
    return build_volumes(cases, WINDOW, (6.0, 6.0, 6.0), {5: 1}, preparing)


BUILDERS = [_slices_with_superpixels, _labelled_slices, _region_volumes, _volumes]
IDS = ["2D pre-training", "2D fine-tuning", "3D pre-training", "3D fine-tuning"]


@pytest.mark.parametrize("build", BUILDERS, ids=IDS)
def test_preparing_reports_shares_up_to_one(build: Builder, cases: list[tuple[Volume, Volume]], tmp_path: Path):
    shares: list[float] = []
    build(cases, tmp_path, shares.append)
    assert shares[0] == 0.0
    assert shares[-1] == 1.0
    assert shares == sorted(shares)
    assert 0.5 in shares  # before the second volume: a check between volumes at least


@pytest.mark.parametrize("build", BUILDERS, ids=IDS)
def test_an_exception_of_preparing_stops_the_builder(
    build: Builder, cases: list[tuple[Volume, Volume]], tmp_path: Path
):
    shares: list[float] = []

    def cancelled(share: float) -> None:
        shares.append(share)
        if share >= 0.5:
            raise Stop

    with pytest.raises(Stop):
        build(cases, tmp_path, cancelled)
    assert shares[-1] == 0.5  # stopped before the second volume was touched
