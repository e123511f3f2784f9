"""Encoding large DICOM sequences in one pass: the bytes pydicom writes, without its per-element cost.

A 300-slice BINARY SEG holds up to 1200 per-frame functional group items of ~15 elements each;
pydicom writes every element through a buffer, a VR table and an ambiguous-VR check per item
(~0.75 s on one core: more than the whole model stage on a GPU). The items hold only plain values
(UIDs, codes, numbers), and Explicit VR Little Endian encodes those in a few well-defined ways
(PS3.5 section 7), so :func:`presized` encodes such sequences here and hands pydicom raw elements,
which it writes as they are (:meth:`pydicom.dataset.Dataset.set_original_encoding` is pydicom's
door for this).

Anything outside that plain subset (another VR, an ambiguous VR, non-ASCII text, bytes values, a
raw element other than plain decimal strings, as :func:`decimal_strings` makes) leaves its
sequence to pydicom. ``tests/io/test_dicom_encode.py`` checks that the file is byte-identical to
pydicom's own on real SEGs and RTSTRUCTs and on edge values.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from typing import Any

import numpy as np
import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filewriter import correct_ambiguous_vr
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

_LONG_LENGTH = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_STRINGS = {"UI": b"\0", "CS": b" "}  # pydicom's write_string: padding byte
_TEXTS = frozenset({"SH", "LO"})  # write_text: charset-encoded, ASCII is the same in every charset
_NUMBER_STRINGS = frozenset({"DS", "IS"})
_BINARY = {"US": "H", "UL": "L", "FD": "d", "FL": "f"}
_UNDEFINED = 0xFFFFFFFF
_ITEM = b"\xfe\xff\x00\xe0"  # (FFFE,E000), then the item's length
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"  # (FFFE,E00D), length 0
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0


_DS = rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_DS_VALUES = re.compile(_DS + rb"(?:\\" + _DS + rb")*")  # backslash-separated, no spaces


class _NotPlain(Exception):
    """A value this module does not encode; pydicom writes its sequence."""


def presized(dataset: pydicom.Dataset) -> pydicom.Dataset:
    """``dataset`` ready for ``save_as``, with its plain top-level sequences already encoded.

    Returns a shallow copy whose save writes the same bytes as saving ``dataset`` (Explicit VR
    Little Endian, built in memory); any other dataset is returned as it is. The copy shares
    elements with ``dataset``: ambiguous VRs are resolved on them as ``save_as`` would.
    """
    meta = getattr(dataset, "file_meta", None)
    if (
        meta is None
        or meta.get("TransferSyntaxUID") != ExplicitVRLittleEndian
        or dataset.original_encoding != (None, None)
    ):
        return dataset
    encoded: dict[int, RawDataElement] = {}
    for elem in dataset.elements():  # raw elements stay raw
        if isinstance(elem, DataElement) and elem.VR == "SQ" and not elem.is_empty:
            try:
                items = _items(elem)
            except _NotPlain:
                continue
            length = _UNDEFINED if elem.is_undefined_length else len(items)  # pydicom adds the delimiter
            encoded[elem.tag] = RawDataElement(Tag(elem.tag), "SQ", length, items, 0, False, True)
    if not encoded:
        return dataset
    copy = pydicom.Dataset({elem.tag: elem for elem in dataset.elements() if elem.tag not in encoded})
    copy.file_meta = meta
    copy.preamble = getattr(dataset, "preamble", None)
    correct_ambiguous_vr(copy, True)  # what saving an in-memory dataset does first
    for tag, raw in encoded.items():
        copy[tag] = raw
    charset = copy.get("SpecificCharacterSet")
    copy.set_original_encoding(False, True, convert_encodings(charset) if charset else default_encoding)
    return copy


def decimal_strings(tag: int, texts: list[str]) -> RawDataElement:
    """A DS element from values the caller formatted (``f"{v:.4f}"``), encoded once.

    pydicom makes and validates one ``DSfloat`` per value (~10 us; an RTSTRUCT of a 300-slice CT
    has 600 000 contour coordinates); saved through :func:`presized`, the bytes are those pydicom
    writes for the same strings.
    """
    joined = "\\".join(texts).encode("ascii")
    if not _DS_VALUES.fullmatch(joined):
        raise ValueError(f"not decimal strings: {texts[:4]}...")
    value = _padded(joined, b" ")
    return RawDataElement(Tag(tag), "DS", len(value), value, 0, False, True)


def _items(elem: DataElement) -> bytes:
    """A sequence's items, encoded (without the sequence delimiter)."""
    return b"".join(_item(item) for item in elem.value)


def _item(item: pydicom.Dataset) -> bytes:
    body = b"".join(_element(elem) for elem in item.elements() if not _group_length(elem.tag))
    if getattr(item, "is_undefined_length_sequence_item", False):
        return _ITEM + struct.pack("<L", _UNDEFINED) + body + _ITEM_END
    return _ITEM + struct.pack("<L", len(body)) + body


def _group_length(tag: int) -> bool:
    """Retired group lengths, which pydicom does not write (PS3.5 section 7.2)."""
    return (tag & 0xFFFF) == 0 and (tag >> 16) > 6


def _element(elem: DataElement | RawDataElement) -> bytes:
    if isinstance(elem, RawDataElement):
        return _raw_decimals(elem)
    vr = elem.VR
    if vr == "SQ":
        value = _items(elem) if not elem.is_empty else b""
        length = _UNDEFINED if elem.is_undefined_length else len(value)
        value += _SEQUENCE_END if elem.is_undefined_length else b""
    elif elem.is_undefined_length:
        raise _NotPlain
    else:
        value = _value(vr, elem.value) if not elem.is_empty else b""
        length = len(value)
    head = struct.pack("<HH", elem.tag >> 16, elem.tag & 0xFFFF) + vr.encode()
    if vr in _LONG_LENGTH:
        return head + struct.pack("<HL", 0, length) + value
    if length > 0xFFFF:  # pydicom would rewrite the VR as UN
        raise _NotPlain
    return head + struct.pack("<H", length) + value


def _raw_decimals(elem: RawDataElement) -> bytes:
    """A raw DS element (Explicit VR Little Endian) whose value pydicom would write back unchanged:
    decimal strings without spaces, padded to even length with one space."""
    value = elem.value
    if elem.VR != "DS" or elem.is_implicit_VR or not elem.is_little_endian or not isinstance(value, bytes):
        raise _NotPlain
    stripped = value[:-1] if value.endswith(b" ") and len(value) % 2 == 0 else value
    if len(value) > 0xFFFF or value != _padded(stripped, b" ") or not _DS_VALUES.fullmatch(stripped):
        raise _NotPlain
    return struct.pack("<HH", elem.tag >> 16, elem.tag & 0xFFFF) + b"DS" + struct.pack("<H", len(value)) + value


def _value(vr: str, value: Any) -> bytes:
    if vr in _STRINGS or vr in _TEXTS:
        text = _joined(value, str)
        return _padded(text.encode("ascii"), _STRINGS.get(vr, b" "))
    if vr in _NUMBER_STRINGS:  # the string a value was read or given as, else str()
        text = _joined(value, object, lambda v: v.original_string if hasattr(v, "original_string") else str(v))
        return _padded(text.encode("ascii"), b" ")
    if vr in _BINARY and not isinstance(value, str | bytes | np.ndarray):
        values = list(value) if _multi(value) else [value]
        try:
            return struct.pack(f"<{len(values)}{_BINARY[vr]}", *values)
        except struct.error as exc:
            raise _NotPlain from exc
    raise _NotPlain


def _joined(value: Any, kind: type, form: Any = None) -> str:
    values: Iterable[Any] = value if _multi(value) else [value]
    parts = [form(v) if form else v for v in values]
    if not all(isinstance(p, str) and p.isascii() for p in parts) or not all(isinstance(v, kind) for v in values):
        raise _NotPlain
    return "\\".join(parts)


def _multi(value: Any) -> bool:
    return isinstance(value, list | tuple | pydicom.multival.MultiValue)


def _padded(data: bytes, pad: bytes) -> bytes:
    return data + pad if len(data) % 2 else data
