"""Property-based fuzzing of the ingest readers (hypothesis): whatever the bytes, :func:`read_dicom`
and :func:`read_nifti` return an image or raise an :class:`lrc.io.ImageIOError` subclass (the API
maps those to 4xx); any other exception is a bug.

Inputs start from real files (the factory's real CT slice, a real JPEG 2000 CT slice, a crop of
the real TotalSegmentator CT) and are mutated: bytes flipped, inserted, deleted or cut, and header
fields (DICOM attributes, NIfTI header fields) set to edge values. The runs are derandomized (the
same examples on every run, no example database) and bounded by ``max_examples``.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lrc.io import ImageIOError, ReadOptions, read_dicom, read_nifti
from tests import dicom_factory

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
EXAMPLES: dict[str, int] = {}  # inputs read per test (bench/RELIABILITY.md: pytest --log-cli-level=INFO)
log = logging.getLogger(__name__)


def _count(name: str) -> None:
    EXAMPLES[name] = EXAMPLES.get(name, 0) + 1


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz")
    log.info("fuzzed inputs read: %s", EXAMPLES)


@pytest.fixture(scope="module")
def native_slice(shared_data: Path, folder: Path) -> Path:
    """A real CT slice, 64x64, Explicit VR Little Endian, every UID (paths, not bytes: short reprs in reports)."""
    return dicom_factory.write_series(shared_data, folder / "native", dicom_factory.line(1), size=64)[0]


@pytest.fixture(scope="module")
def jpeg2000_slice(shared_data: Path) -> Path:
    return sorted((shared_data / "dicom" / "ct_series_totalseg").glob("CT.*"))[0]


@pytest.fixture(scope="module")
def nifti_crop(shared_data: Path, folder: Path) -> Path:
    """A 24x20x6 crop of the real CT as an uncompressed single-file NIfTI (header, then voxels)."""
    image = nib.load(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct_sm.nii.gz")
    crop = np.asarray(image.dataobj)[40:64, 40:60, 10:16]
    path = folder / "crop.nii"
    path.write_bytes(nib.Nifti1Image(crop, image.affine, image.header).to_bytes())
    return path


KINDS = st.sampled_from(["flip", "set", "insert", "delete", "cut"])
EDIT = st.tuples(KINDS, st.integers(0, 10**6), st.binary(min_size=1, max_size=8))


def _mutate(data: bytes, edits: list[tuple[str, int, bytes]], header_bytes: int) -> bytes:
    """Apply edits; positions fall in the first ``header_bytes`` bytes (the header) half of the time."""
    out = bytearray(data)
    for kind, where, payload in edits:
        if not out:
            break
        span = header_bytes if where % 2 else len(out)
        at = (where // 2) % min(span, len(out))
        if kind == "flip":
            out[at] ^= payload[0] or 0xFF
        elif kind == "set":
            out[at : at + len(payload)] = payload
        elif kind == "insert":
            out[at:at] = payload
        elif kind == "delete":
            del out[at : at + len(payload) * 16]
        else:
            del out[at:]
    return bytes(out)


def _read_dicom_or_image_error(path: Path) -> None:
    with contextlib.suppress(ImageIOError):  # any other exception fails the test
        read_dicom([path], ReadOptions(workers=1, extract_dir=path.parent / "x"))


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=6))
def test_mutated_dicom_bytes(native_slice: Path, folder: Path, edits: list[tuple[str, int, bytes]]):
    path = folder / "mutated.dcm"
    path.write_bytes(_mutate(native_slice.read_bytes(), edits, header_bytes=1400))
    _count("dicom-bytes")
    _read_dicom_or_image_error(path)


@settings(FUZZ, max_examples=80)
@given(edits=st.lists(EDIT, min_size=1, max_size=4))
def test_mutated_jpeg2000_bytes(jpeg2000_slice: Path, folder: Path, edits: list[tuple[str, int, bytes]]):
    path = folder / "mutated-j2k.dcm"
    path.write_bytes(_mutate(jpeg2000_slice.read_bytes(), edits, header_bytes=2000))
    _count("dicom-jpeg2000-bytes")
    _read_dicom_or_image_error(path)


EDGE_INTS = st.sampled_from([0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 31, 32, 33, 64, 255, 65535, -1])
DS_VALUES = st.sampled_from(["0", "-1", "1e308", "-1e308", "NaN", "inf", "1", "0.5", "3", "-0"])
ATTRIBUTES = {
    "Rows": EDGE_INTS,
    "Columns": EDGE_INTS,
    "BitsAllocated": EDGE_INTS,
    "BitsStored": EDGE_INTS,
    "HighBit": EDGE_INTS,
    "PixelRepresentation": st.sampled_from([0, 1, 2]),
    "SamplesPerPixel": st.sampled_from([0, 1, 2, 3, 4]),
    "NumberOfFrames": st.sampled_from(["0", "1", "2", "-1", "x", "1e9"]),
    "RescaleSlope": DS_VALUES,
    "RescaleIntercept": DS_VALUES,
    "PixelSpacing": st.lists(DS_VALUES, min_size=0, max_size=3),
    "ImagePositionPatient": st.lists(DS_VALUES, min_size=0, max_size=4),
    "ImageOrientationPatient": st.lists(DS_VALUES, min_size=0, max_size=7),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "", "X"]),
    "PlanarConfiguration": st.sampled_from([0, 1, 2]),
}


@FUZZ
@given(values=st.fixed_dictionaries({}, optional=ATTRIBUTES).filter(bool))
# What the fuzzer found first (each raised OverflowError, ValueError or a RuntimeWarning, now InvalidDicom).
@example(values={"RescaleIntercept": "inf"})
@example(values={"RescaleIntercept": "NaN"})
@example(values={"RescaleIntercept": "1e308"})
@example(values={"RescaleSlope": "1e308"})
def test_dicom_attributes_at_edge_values(native_slice: Path, folder: Path, values: dict[str, Any]):
    ds = pydicom.dcmread(native_slice)
    path = folder / "attributes.dcm"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the odd values it is told to write
            for keyword, value in values.items():
                if isinstance(value, list) and not value:
                    delattr(ds, keyword)
                else:
                    setattr(ds, keyword, value)
            ds.save_as(path, enforce_file_format=True)
    except (ValueError, TypeError, OverflowError, OSError, struct.error):
        return  # pydicom refuses to write such a value: no file, nothing to read
    _count("dicom-attributes")
    _read_dicom_or_image_error(path)


# NIfTI-1 header fields: (offset, struct format) of the single-file header.
NIFTI_FIELDS = {
    "sizeof_hdr": (0, "<i"),
    "dim": (40, "<8h"),
    "datatype": (70, "<h"),
    "bitpix": (72, "<h"),
    "pixdim": (76, "<8f"),
    "vox_offset": (108, "<f"),
    "scl_slope": (112, "<f"),
    "scl_inter": (116, "<f"),
    "qform_code": (252, "<h"),
    "sform_code": (254, "<h"),
    "quatern": (256, "<6f"),
    "srow": (280, "<12f"),
    "magic": (344, "4s"),
}
SHORTS = st.sampled_from([-32768, -1, 0, 1, 2, 3, 4, 5, 7, 8, 16, 32, 64, 128, 255, 256, 511, 768, 1024, 32767])
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-30, 1e30, 3.0e38, float("nan"), float("inf"), float("-inf")]),
    st.floats(-1e6, 1e6, width=32),
)


def _field_values(fmt: str) -> st.SearchStrategy[tuple]:
    if fmt == "4s":
        return st.tuples(st.sampled_from([b"n+1\0", b"ni1\0", b"n+2\0", b"\0\0\0\0", b"xxxx"]))
    count = int(fmt[1:-1] or 1)
    return st.tuples(*[SHORTS if fmt[-1] in "hi" else FLOATS] * count)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(sorted(NIFTI_FIELDS)), st.none(), min_size=1, max_size=4), data=st.data())
def test_nifti_header_fields_at_edge_values(nifti_crop: Path, folder: Path, fields: dict[str, None], data):
    raw = bytearray(nifti_crop.read_bytes())
    for name in fields:
        offset, fmt = NIFTI_FIELDS[name]
        values = data.draw(_field_values(fmt), label=name)
        raw[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    path = folder / "fields.nii"
    path.write_bytes(bytes(raw))
    _count("nifti-fields")
    with contextlib.suppress(ImageIOError):
        read_nifti(path)


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=6))
def test_mutated_nifti_bytes(nifti_crop: Path, folder: Path, edits: list[tuple[str, int, bytes]]):
    path = folder / "mutated.nii"
    path.write_bytes(_mutate(nifti_crop.read_bytes(), edits, header_bytes=352))
    _count("nifti-bytes")
    with contextlib.suppress(ImageIOError):
        read_nifti(path)
