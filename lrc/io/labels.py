"""Label tables: what each integer of a label map means.

A :class:`LabelTable` maps label values to a name, a display colour and coded concepts
(SNOMED CT category and type) that DICOM SEG and RTSTRUCT need. Known organ names get their
SNOMED CT codes; unknown names are coded as generic tissue and keep their name as the label.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCT = "SCT"
ANATOMICAL_STRUCTURE = (SCT, "123037004", "Anatomical Structure")
TISSUE = (SCT, "85756007", "Tissue")

MAX_VALUE = 65535  # label maps are written as uint16 at most (NIfTI, DICOM SEG LABELMAP)
MAX_NAME = 64  # DICOM's SegmentLabel and ROIName are LO: 64 characters
MAX_STRUCTURES = 255  # a model's classes (background included) fit in a uint8 class map

# Structures this service is likely to segment (normalised name -> SNOMED CT code, meaning, colour).
# Each structure keeps its colour whatever value a table gives it, and the abdomen's colours stay far
# apart (more than 60 in RGB between any two; tests/io/test_labels.py): the most common organs take
# the ten colours of a qualitative palette (Tableau 10), the rest lighter twins and a dark blue.
KNOWN_STRUCTURES: dict[str, tuple[str, str, tuple[int, int, int]]] = {
    "liver": ("10200004", "Liver", (255, 127, 14)),
    "spleen": ("78961009", "Spleen", (148, 103, 189)),
    "kidney": ("64033007", "Kidney", (44, 160, 44)),
    "kidney_right": ("9846003", "Right kidney", (44, 160, 44)),
    "right_kidney": ("9846003", "Right kidney", (44, 160, 44)),
    "kidney_left": ("18639004", "Left kidney", (152, 223, 138)),
    "left_kidney": ("18639004", "Left kidney", (152, 223, 138)),
    "pancreas": ("15776009", "Pancreas", (188, 189, 34)),
    "aorta": ("15825003", "Aorta", (214, 39, 40)),
    "stomach": ("69695003", "Stomach", (31, 119, 180)),
    "gallbladder": ("28231008", "Gallbladder", (227, 119, 194)),
    "inferior_vena_cava": ("64131007", "Inferior vena cava", (23, 190, 207)),
    "esophagus": ("32849002", "Esophagus", (140, 86, 75)),
    "duodenum": ("38848004", "Duodenum", (255, 187, 120)),
    "urinary_bladder": ("89837001", "Urinary bladder", (174, 199, 232)),
    "colon": ("71854001", "Colon", (196, 156, 148)),
    "small_bowel": ("30315005", "Small intestine", (247, 182, 210)),
    "heart": ("80891009", "Heart", (255, 152, 150)),
    "lung": ("39607008", "Lung", (158, 218, 229)),
    "portal_vein": ("32764006", "Portal vein", (57, 59, 121)),
    "prostate": ("41216001", "Prostate", (219, 219, 141)),
    "brain": ("12738006", "Brain", (199, 199, 199)),
    "adrenal_gland": ("23451007", "Adrenal gland", (127, 127, 127)),
}
_ALIASES = {
    "ivc": "inferior_vena_cava",
    "gall_bladder": "gallbladder",
    "bladder": "urinary_bladder",
    "oesophagus": "esophagus",
    "small_intestine": "small_bowel",
}

# A qualitative palette (RGB) for structures without a colour of their own, by label value.
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)


def normalized_name(name: str) -> str:
    """A structure's name as names are compared: lower case, ``_`` for spaces and hyphens, aliases resolved."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return _ALIASES.get(key, key)


@dataclass(frozen=True)
class Label:
    """One label value and what it means.

    ``category`` and ``type`` are (coding scheme, code value, code meaning) triples.
    """

    value: int
    name: str
    color: tuple[int, int, int]
    category: tuple[str, str, str] = ANATOMICAL_STRUCTURE
    type: tuple[str, str, str] = TISSUE

    @classmethod
    def named(cls, value: int, name: str, color: tuple[int, int, int] | None = None) -> Label:
        """A label coded (and coloured, unless ``color`` is given) from its name when the name is a known
        structure.

        Raises:
            ValueError: ``value`` outside 1..65535, or ``name`` not 1 to 64 printable characters.
        """
        if not 1 <= value <= MAX_VALUE:
            raise ValueError(f"label values are 1 to {MAX_VALUE} (0 is background), got {value} for {name!r:.80}")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not name.isprintable():
            raise ValueError(f"label {value}: a name is 1 to {MAX_NAME} printable characters, got {name!r:.80}")
        key = normalized_name(name)
        if key in KNOWN_STRUCTURES:
            code, meaning, known = KNOWN_STRUCTURES[key]
            return cls(value, name, color or known, ANATOMICAL_STRUCTURE, (SCT, code, meaning))
        return cls(value, name, color or PALETTE[(value - 1) % len(PALETTE)], TISSUE, TISSUE)


class LabelTable(Mapping[int, Label]):
    """Label value -> :class:`Label`, background (0) excluded, values unique."""

    def __init__(self, labels: Iterable[Label]) -> None:
        self._labels: dict[int, Label] = {}
        for label in labels:
            if label.value in self._labels:
                raise ValueError(f"label value {label.value} appears twice in the label table")
            self._labels[label.value] = label
        self._labels = dict(sorted(self._labels.items()))

    def __getitem__(self, value: int) -> Label:
        return self._labels[value]

    def __iter__(self) -> Iterator[int]:
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    @classmethod
    def from_names(cls, names: Mapping[int, str] | Iterable[str]) -> LabelTable:
        """From ``{value: name}``, or from a list of names numbered from 1."""
        items = names.items() if isinstance(names, Mapping) else enumerate(names, start=1)
        return cls(Label.named(int(value), str(name)) for value, name in items)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> LabelTable:
        """Read a JSON file in the form :meth:`from_dict` takes.

        Raises:
            ValueError: the file is no JSON object of label value -> name or entry (the message names
                the file and the key).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable JSON label table ({exc})") from exc
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> LabelTable:
        """From ``{"1": "liver", ...}`` or ``{"1": {"name": ..., "color": [r, g, b], ...}, ...}`` (:meth:`to_json`).

        Raises:
            ValueError: not an object of label value (a whole number from 1) -> name or entry; the
                message names the offending key.
        """
        if not isinstance(data, dict) or not data:
            raise ValueError('a label table is a JSON object of label value -> name, e.g. {"1": "liver"}')
        labels = []
        for key, entry in data.items():
            try:
                value = int(key)
            except (TypeError, ValueError):
                raise ValueError(
                    f'key {key!r} is no label value: keys are the whole numbers of the label map, e.g. {{"1": "liver"}}'
                ) from None
            try:
                labels.append(_entry(value, entry))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"label {key!r}: {exc}") from None
        return cls(labels)

    def to_json(self) -> dict[str, Any]:
        """The table as JSON-ready data (the format :meth:`from_json` reads)."""
        return {
            str(v): {"name": lab.name, "color": list(lab.color), "category": list(lab.category), "type": list(lab.type)}
            for v, lab in self._labels.items()
        }


def _entry(value: int, entry: Any) -> Label:
    """One label from a name or an entry ``{"name", "color"?, "category"?, "type"?}``."""
    if isinstance(entry, str):
        return Label.named(value, entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ValueError(f"a label is a name or an object with a 'name', got {entry!r:.80}")
    label = Label.named(value, entry["name"], _color(entry.get("color")))
    if "type" not in entry:
        return label
    category, kind = tuple(entry.get("category", label.category)), tuple(entry["type"])
    if len(category) != 3 or len(kind) != 3 or not all(isinstance(part, str) for part in (*category, *kind)):
        raise ValueError("'category' and 'type' are [coding scheme, code value, code meaning]")
    coded = (category[0], category[1], category[2]), (kind[0], kind[1], kind[2])
    return Label(label.value, label.name, label.color, *coded)


def _color(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    r, g, b = (int(c) for c in value)
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise ValueError(f"a colour is [r, g, b] in 0-255, got {list(value)}")
    return (r, g, b)
