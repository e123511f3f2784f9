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

# SNOMED CT codes of structures this service is likely to segment (normalised name -> code, meaning).
KNOWN_STRUCTURES: dict[str, tuple[str, str]] = {
    "liver": ("10200004", "Liver"),
    "spleen": ("78961009", "Spleen"),
    "kidney": ("64033007", "Kidney"),
    "kidney_right": ("9846003", "Right kidney"),
    "right_kidney": ("9846003", "Right kidney"),
    "kidney_left": ("18639004", "Left kidney"),
    "left_kidney": ("18639004", "Left kidney"),
    "pancreas": ("15776009", "Pancreas"),
    "aorta": ("15825003", "Aorta"),
    "stomach": ("69695003", "Stomach"),
    "gallbladder": ("28231008", "Gallbladder"),
    "inferior_vena_cava": ("64131007", "Inferior vena cava"),
    "esophagus": ("32849002", "Esophagus"),
    "duodenum": ("38848004", "Duodenum"),
    "urinary_bladder": ("89837001", "Urinary bladder"),
    "colon": ("71854001", "Colon"),
    "small_bowel": ("30315005", "Small intestine"),
    "heart": ("80891009", "Heart"),
    "lung": ("39607008", "Lung"),
    "portal_vein": ("32764006", "Portal vein"),
    "prostate": ("41216001", "Prostate"),
    "brain": ("12738006", "Brain"),
    "adrenal_gland": ("23451007", "Adrenal gland"),
}
_ALIASES = {
    "ivc": "inferior_vena_cava",
    "gall_bladder": "gallbladder",
    "bladder": "urinary_bladder",
    "oesophagus": "esophagus",
    "small_intestine": "small_bowel",
}

# A qualitative palette (RGB) for labels without a colour of their own.
PALETTE = (
    (221, 130, 101),
    (157, 108, 162),
    (185, 102, 83),
    (241, 214, 145),
    (216, 101, 79),
    (111, 184, 210),
    (230, 220, 70),
    (0, 151, 206),
    (255, 253, 229),
    (128, 174, 128),
    (244, 214, 49),
    (183, 156, 220),
    (183, 214, 211),
    (152, 189, 207),
    (178, 212, 242),
    (68, 172, 100),
    (111, 197, 131),
    (85, 188, 255),
    (0, 145, 30),
    (214, 230, 130),
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
        """A label coded from its name when the name is a known structure."""
        if value <= 0:
            raise ValueError(f"label values start at 1 (0 is background), got {value} for {name!r}")
        key = normalized_name(name)
        colour = color or PALETTE[(value - 1) % len(PALETTE)]
        if key in KNOWN_STRUCTURES:
            code, meaning = KNOWN_STRUCTURES[key]
            return cls(value, name, colour, ANATOMICAL_STRUCTURE, (SCT, code, meaning))
        return cls(value, name, colour, TISSUE, TISSUE)


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
