"""PhotometricInterpretation: MONOCHROME1 images are inverted after the rescale (PS3.3 C.7.6.3.1.2),
except CT, whose rescaled values are Hounsfield units whatever the display polarity."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_array_equal

from lrc.io import read_volume


def _relabelled(source: Path, target: Path, photometric: str, modality: str | None = None) -> Path:
    ds = pydicom.dcmread(source)
    ds.PhotometricInterpretation = photometric
    if modality is not None:
        ds.Modality = modality
        if "RescaleType" in ds:  # HU would still say calibrated
            del ds.RescaleType
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return target


def _range(ds: pydicom.Dataset) -> tuple[float, float]:
    """Rescaled range of the stored bits, computed from the header independently of lrc.io."""
    bits = int(ds.BitsStored)
    stored = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    return stored[0] * slope + intercept, stored[1] * slope + intercept


@pytest.mark.parametrize(
    "source",
    [
        "seg_dcmqi/ct-3slice/01.dcm",  # GE CT, native little endian (read from its file offset)
        "ct_series_totalseg/CT.1.3.12.2.1107.5.1.4.60064.30000022120808113428000016580",  # JPEG 2000 (decoded)
    ],
)
def test_monochrome1_is_inverted_after_rescale(shared_data: Path, tmp_path: Path, source: str):
    # Relabelled MR: a modality whose rescaled values have no calibrated meaning.
    original = shared_data / "dicom" / source
    as_read = read_volume([_relabelled(original, tmp_path / "m2" / "m2.dcm", "MONOCHROME2", "MR")]).array
    mono1 = read_volume([_relabelled(original, tmp_path / "m1" / "m1.dcm", "MONOCHROME1", "MR")]).array
    ds = pydicom.dcmread(original)
    low, high = _range(ds)
    # Independent reference: pydicom's stored values, rescaled, reflected in the rescaled range.
    modality = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.RescaleIntercept)
    assert np.abs(as_read).max() > 0
    assert_array_equal(mono1, (low + high) - as_read)
    assert_array_equal(np.sort(mono1.ravel()), np.sort(((low + high) - modality).ravel()))
    assert mono1.dtype == as_read.dtype


def test_monochrome2_is_unchanged(shared_data: Path, tmp_path: Path):
    original = shared_data / "dicom" / "seg_dcmqi" / "ct-3slice" / "01.dcm"
    reference = read_volume([shutil.copy(original, tmp_path / "ref.dcm")]).array
    explicit = read_volume([_relabelled(original, tmp_path / "m2" / "x.dcm", "MONOCHROME2")]).array
    assert_array_equal(explicit, reference)


def test_monochrome1_ct_keeps_hounsfield_units(shared_data: Path, tmp_path: Path):
    # PS3.3 C.11.1: the Modality LUT gives HU; MONOCHROME1 only inverts the display after the VOI
    # (C.7.6.3.1.2). Inverting HU sends air to ~+3000 and saturates a fixed HU window.
    original = shared_data / "dicom" / "seg_dcmqi" / "ct-3slice" / "01.dcm"
    reference = read_volume([shutil.copy(original, tmp_path / "ref.dcm")]).array
    mono1 = read_volume([_relabelled(original, tmp_path / "m1" / "x.dcm", "MONOCHROME1")]).array
    assert reference.min() < -900
    assert_array_equal(mono1, reference)
