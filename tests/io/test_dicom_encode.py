"""Sequences encoded in one pass: the saved file must be pydicom's own, byte for byte.

The oracle is ``Dataset.save_as`` on a deep copy of the same dataset. Inputs: every real file in
``shared/data/dicom`` (third-party SEGs from dcmqi and highdicom, a CT), decoded and turned back
into in-memory datasets; the SEGs and RTSTRUCTs our writers build from a real CT; and generated
items with the values where encodings part ways (odd lengths, multi-values, empty values, DS
strings, undefined lengths, nesting), plus values that must be left to pydicom.
"""

from __future__ import annotations

import copy
import warnings
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from lrc.io import read_volume
from lrc.io.atomic import write_dataset
from lrc.io.dicom_encode import decimal_strings, presized
from lrc.io.labels import LabelTable
from lrc.io.rtstruct import write_rtstruct
from lrc.io.seg import read_seg, write_seg
from tests.conftest import _shared_data

FRAMES = 0x52009230  # PerFrameFunctionalGroupsSequence


def saved(dataset: pydicom.Dataset) -> bytes:
    out = BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def assert_same_bytes(dataset: pydicom.Dataset) -> pydicom.Dataset:
    """``presized`` saves as pydicom does; returns what it made."""
    expected = saved(copy.deepcopy(dataset))
    fast = presized(dataset)
    assert saved(fast) == expected
    return fast


def in_memory(path: Path) -> pydicom.Dataset:
    """A file decoded element by element and marked as built in memory (Explicit VR LE)."""
    ds = pydicom.dcmread(path)
    for _ in ds.iterall():  # decodes every raw element, nested ones included
        pass
    ds.set_original_encoding(None, None, None)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def encoded_tags(dataset: pydicom.Dataset) -> set[int]:
    return {elem.tag for elem in dataset.elements() if isinstance(elem, RawDataElement)}


REAL = sorted(
    str(p.relative_to(_shared_data() / "dicom"))
    for p in (_shared_data() / "dicom").glob("seg_*/**/*")
    if p.is_file() and p.suffix in ("", ".dcm")
)


@pytest.mark.parametrize("name", REAL)
def test_real_files_save_as_pydicom_does(shared_data: Path, name: str):
    path = shared_data / "dicom" / name
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if ds.file_meta.TransferSyntaxUID not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        pytest.skip(f"{name} is compressed ({ds.file_meta.TransferSyntaxUID.name}): not re-encodable as it is")
    fast = assert_same_bytes(in_memory(path))
    if "SEG" in str(ds.get("Modality")) and int(ds.get("NumberOfFrames", 1)) > 1:
        assert FRAMES in encoded_tags(fast)


@pytest.mark.parametrize("kind", ["binary", "labelmap"])
def test_our_seg_and_rtstruct_of_a_real_ct(shared_data: Path, tmp_path: Path, kind: str):
    image = read_volume(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice")
    labels = read_seg(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm", image).label_map()
    table = LabelTable.from_names({1: "liver"})
    seg = write_seg(labels, image, table, tmp_path / "seg.dcm", segmentation_type=kind)  # type: ignore[arg-type]
    rt = write_rtstruct(labels, image, table, tmp_path / "rt.dcm")
    for path in (seg, rt):
        ds = in_memory(path)
        assert saved(copy.deepcopy(ds)) == path.read_bytes()  # what write_dataset wrote is pydicom's encoding
        assert encoded_tags(assert_same_bytes(ds))


def plain_items(count: int) -> Sequence:
    """Items with the value shapes our writers put in large sequences, and their edge cases."""
    items = []
    for i in range(count):
        item = pydicom.Dataset()
        item.ReferencedSOPInstanceUID = f"1.2.3.{i}"  # odd and even lengths: NUL padding
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.CodeValue = "A" * (i % 3)  # SH, empty on every third item
        item.CodeMeaning = f"code {i}"  # LO, odd and even
        item.ImagePositionPatient = [-0.5 * i, "1.25", 1e-7 * i]  # DS from floats and a string
        item.SliceThickness = pydicom.valuerep.DSfloat("2.50")  # the original string is kept
        item.InstanceNumber = i  # IS
        item.DimensionIndexValues = [1, i + 1]  # UL, multi-valued
        item.ReferencedSegmentNumber = i % 4 + 1  # US
        item.add_new(0x00189327, "FD", float(i) / 3)  # TablePosition
        item.add_new(0x00189219, "FL", [0.5, -i])  # TableSpeed-like: FL multi-valued
        item.add_new(0x0020000D, "UI", None)  # empty UID
        item.add_new(0x00080000, "UL", 99)  # a retired group length: not written
        item.add_new(0x00091010, "LO", "private value")
        inner = pydicom.Dataset()
        inner.CodeValue = "121322"
        inner.CodingSchemeDesignator = "DCM"
        item.PurposeOfReferenceCodeSequence = Sequence([inner])
        item.DerivationCodeSequence = Sequence()  # empty sequence
        items.append(item)
    return Sequence(items)


def generated(count: int = 5) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    ds.PatientName = "Doe^Jane"
    ds.PerFrameFunctionalGroupsSequence = plain_items(count)
    return ds


def test_generated_edge_values():
    fast = assert_same_bytes(generated())
    assert encoded_tags(fast) == {FRAMES}


@pytest.mark.parametrize("undefined", ["sequence", "items", "nested"])
def test_undefined_lengths(undefined: str):
    ds = generated()
    sequence = ds["PerFrameFunctionalGroupsSequence"]
    if undefined == "sequence":
        sequence.is_undefined_length = True
    elif undefined == "items":
        for item in sequence.value:
            item.is_undefined_length_sequence_item = True
    else:
        for item in sequence.value:
            item["PurposeOfReferenceCodeSequence"].is_undefined_length = True
    assert encoded_tags(assert_same_bytes(ds)) == {FRAMES}


def spoil(item: pydicom.Dataset, how: str) -> None:
    if how == "non-ascii":
        item.CodeMeaning = "Leber, Lebersegment Ä"
    elif how == "ambiguous":
        item.add_new(0x00283002, "US or SS", [256, 0, 16])  # LUTDescriptor: pydicom decides
        item.PixelRepresentation = 0
    elif how == "date":
        item.ContentDate = "20261204"
    elif how == "person":
        item.add_new(0x00081070, "PN", "Doe^John")
    elif how == "signed":
        item.add_new(0x00091011, "SS", [-3, 4])  # a VR this module does not encode
    elif how == "bytes":
        item.CodeMeaning = b"raw bytes"


@pytest.mark.parametrize("how", ["non-ascii", "ambiguous", "date", "person", "signed", "bytes"])
def test_values_outside_the_plain_subset_are_left_to_pydicom(how: str):
    ds = generated()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ReferencedSeriesSequence = plain_items(3)  # an unspoiled neighbour is still encoded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own complaints about the spoiled values
        spoil(ds.PerFrameFunctionalGroupsSequence[3], how)
        fast = assert_same_bytes(ds)
    assert encoded_tags(fast) == {0x00081115}
    assert isinstance(fast.get_item(FRAMES), DataElement)


def test_the_input_dataset_is_left_as_it_was():
    ds = generated()
    before = saved(copy.deepcopy(ds))
    presized(ds)
    assert isinstance(ds.get_item(FRAMES), DataElement)
    assert saved(ds) == before


def test_other_datasets_pass_through(shared_data: Path, tmp_path: Path):
    read = pydicom.dcmread(shared_data / "dicom" / "seg_dcmqi" / "liver.dcm")  # from a file: pydicom's fast path
    assert presized(read) is read
    implicit = generated()
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert presized(implicit) is implicit
    path = write_dataset(generated(), tmp_path / "x.dcm")
    assert len(pydicom.dcmread(path).PerFrameFunctionalGroupsSequence) == 5


CONTOUR_DATA = 0x30060050


@pytest.mark.parametrize(
    "texts", [["1.0000", "-2.5000", "300.1250"], ["7"], ["1e5", ".5", "+3", "-0.25E-3"]], ids=["odd", "one", "forms"]
)
def test_decimal_strings_save_as_pydicom_writes_the_same_strings(texts: list[str]):
    given = generated()
    raw = copy.deepcopy(given)
    for a, b in zip(given.PerFrameFunctionalGroupsSequence, raw.PerFrameFunctionalGroupsSequence, strict=True):
        a.ContourData = texts
        b[CONTOUR_DATA] = decimal_strings(CONTOUR_DATA, texts)
    expected = saved(given)
    fast = presized(raw)
    assert encoded_tags(fast) == {FRAMES}
    assert saved(fast) == expected
    assert saved(copy.deepcopy(raw)) == expected  # pydicom alone converts the raw value back: same bytes
    back = raw.PerFrameFunctionalGroupsSequence[0].ContourData  # the raw value decoded on access
    assert [float(v) for v in (back if len(texts) > 1 else [back])] == [float(t) for t in texts]


@pytest.mark.parametrize("texts", [["1.2.3"], ["1 "], ["nan"], []])
def test_decimal_strings_refuse_what_is_not_a_decimal_string(texts: list[str]):
    with pytest.raises(ValueError, match="not decimal strings"):
        decimal_strings(CONTOUR_DATA, texts)


def test_raw_elements_pydicom_would_rewrite_are_left_to_it():
    ds = generated()
    item = ds.PerFrameFunctionalGroupsSequence[0]
    item[CONTOUR_DATA] = RawDataElement(pydicom.tag.Tag(CONTOUR_DATA), "DS", 8, b" 1.5\\2 ", 0, False, True)  # spaces
    assert isinstance(presized(ds).get_item(FRAMES), DataElement)
