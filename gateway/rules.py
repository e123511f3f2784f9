"""Routing rules: which model segments a complete series, or whether it is ignored.

The rules file is YAML; the first rule whose conditions all hold decides::

    rules:
      - name: abdomen CT               # optional, shown in logs
        Modality: CT                   # one value or a list (case-insensitive)
        BodyPartExamined: [ABDOMEN, ABDOMENPELVIS]
        SeriesDescription: "(?i)abd|liver"   # regular expression, searched in the description
        MinSlices: 20                  # frames in the series (instances x NumberOfFrames)
        model: ct-abdomen              # a model name ('name' or 'name:version'), or: ignore
      - Modality: [MR, SR]
        model: ignore
    default: ignore                    # no rule matched; absent: the gateway's --model (or production)

A condition that is absent matches everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import yaml
from pydicom.errors import InvalidDicomError

from gateway.errors import InvalidConfig

IGNORE = "ignore"
CONDITIONS = ("Modality", "BodyPartExamined", "SeriesDescription", "MinSlices")


@dataclass(frozen=True)
class SeriesInfo:
    """What rules look at in a series' headers."""

    modality: str
    body_part: str
    description: str
    slices: int

    @classmethod
    def read(cls, folder: Path) -> SeriesInfo:
        """The attributes of the series in ``folder`` (headers only; pixels are not read)."""
        first: pydicom.Dataset | None = None
        slices = 0
        for path in sorted(folder.glob("*.dcm")):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["NumberOfFrames"])
            except (InvalidDicomError, OSError):
                continue
            slices += int(ds.get("NumberOfFrames") or 1)
            if first is None:
                first = pydicom.dcmread(path, stop_before_pixels=True)
        if first is None:
            return cls("", "", "", 0)
        return cls(
            str(first.get("Modality", "")),
            str(first.get("BodyPartExamined", "")),
            str(first.get("SeriesDescription", "")),
            slices,
        )


@dataclass(frozen=True)
class Route:
    """Where a series goes: ``model`` (``None``: the service's production model), or ignored."""

    model: str | None
    ignore: bool = False
    rule: str = "default"


@dataclass(frozen=True)
class Rule:
    """One rule: conditions and the model (or ``ignore``)."""

    name: str
    model: str
    modality: frozenset[str] = frozenset()
    body_part: frozenset[str] = frozenset()
    description: re.Pattern[str] | None = None
    min_slices: int = 0

    def matches(self, info: SeriesInfo) -> bool:
        """All conditions hold for ``info``."""
        return (
            (not self.modality or info.modality.upper() in self.modality)
            and (not self.body_part or info.body_part.upper() in self.body_part)
            and (self.description is None or self.description.search(info.description) is not None)
            and info.slices >= self.min_slices
        )


@dataclass(frozen=True)
class Rules:
    """An ordered list of rules and what happens when none matches."""

    rules: tuple[Rule, ...] = ()
    default: str | None = None
    fallback_model: str | None = field(default=None)

    def route(self, info: SeriesInfo) -> Route:
        """The first matching rule's decision, else the default."""
        for rule in self.rules:
            if rule.matches(info):
                return _route(rule.model, rule.name)
        if self.default is not None:
            return _route(self.default, "default")
        return Route(self.fallback_model)


def _route(model: str, rule: str) -> Route:
    return Route(None, True, rule) if model == IGNORE else Route(model, False, rule)


def _values(value: Any, where: str) -> frozenset[str]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str | int) for v in values):
        raise InvalidConfig(f"{where}: expected a value or a list of values, got {value!r}")
    return frozenset(str(v).upper() for v in values)


def parse_rules(document: Any, fallback_model: str | None = None, source: str = "rules") -> Rules:
    """Rules from a parsed YAML document.

    Raises:
        InvalidConfig: the document is not of the form described in this module.
    """
    if document is None:
        return Rules(fallback_model=fallback_model)
    if not isinstance(document, dict) or set(document) - {"rules", "default"}:
        raise InvalidConfig(f"{source}: expected a mapping with 'rules' (a list) and optionally 'default'")
    rules = []
    for number, item in enumerate(document.get("rules") or [], start=1):
        where = f"{source}: rule {number}"
        if not isinstance(item, dict):
            raise InvalidConfig(f"{where}: expected a mapping, got {item!r}")
        unknown = set(item) - {*CONDITIONS, "name", "model"}
        if unknown:
            raise InvalidConfig(f"{where}: unknown keys {sorted(unknown)}; conditions are {', '.join(CONDITIONS)}")
        model = item.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidConfig(f"{where}: 'model' (a model name, or 'ignore') is needed")
        try:
            description = re.compile(str(item["SeriesDescription"])) if "SeriesDescription" in item else None
        except re.error as exc:
            raise InvalidConfig(f"{where}: SeriesDescription is not a regular expression: {exc}") from exc
        min_slices = item.get("MinSlices", 0)
        if not isinstance(min_slices, int) or min_slices < 0:
            raise InvalidConfig(f"{where}: MinSlices must be a whole number >= 0, got {min_slices!r}")
        rules.append(
            Rule(
                name=str(item.get("name", f"rule {number}")),
                model=model,
                modality=_values(item["Modality"], where) if "Modality" in item else frozenset(),
                body_part=_values(item["BodyPartExamined"], where) if "BodyPartExamined" in item else frozenset(),
                description=description,
                min_slices=min_slices,
            )
        )
    default = document.get("default")
    if default is not None and not isinstance(default, str):
        raise InvalidConfig(f"{source}: 'default' must be a model name or 'ignore', got {default!r}")
    return Rules(tuple(rules), default, fallback_model)


def load_rules(path: Path | None, fallback_model: str | None = None) -> Rules:
    """Rules from a YAML file (``None``: every series goes to ``fallback_model``).

    Raises:
        InvalidConfig: the file cannot be read or is not valid.
    """
    if path is None:
        return Rules(fallback_model=fallback_model)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidConfig(f"rules file {path}: {exc}") from exc
    return parse_rules(document, fallback_model, str(path))
