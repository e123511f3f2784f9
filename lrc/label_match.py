"""Labels matched by what they mean: a SNOMED CT code where both sides have one, else the name.

A label value is a local encoding: TotalSegmentator writes the liver as 5, the shipped starter
model as 1. Everything that puts a model's output beside reference labels, or one model's label
table beside another's, goes through this module so that the liver is scored against the liver
whatever number each side gives it.

* :func:`match_labels` pairs a model's table with a reference table; structures only one side
  has are listed apart, never scored as zero.
* :func:`number_labels` gives a dataset's structures the values an existing table (a base or
  production model) already uses for them, and new values to the rest.
* :func:`label_changes` says how two tables differ in names and values (a model name keeps one
  meaning: a candidate that writes other values than production is flagged).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lrc.io.labels import MAX_STRUCTURES, TISSUE, Label, LabelTable, normalized_name


class LabelMismatch(ValueError):
    """Two label tables cannot be matched: nothing in common, or one structure on one side matches several."""


def concept(label: Label) -> tuple[str, ...] | None:
    """The coded concept of a label (scheme, code), or ``None`` for the generic tissue code."""
    if tuple(label.type) == TISSUE:
        return None
    return (label.type[0], label.type[1])


def same_structure(a: Label, b: Label) -> bool:
    """Whether two labels name the same structure: equal codes when both are coded, else equal names."""
    code_a, code_b = concept(a), concept(b)
    if code_a is not None and code_b is not None:
        return code_a == code_b
    return normalized_name(a.name) == normalized_name(b.name)


@dataclass(frozen=True)
class LabelPair:
    """One structure on both sides: its name (the model's spelling) and the value each side writes."""

    name: str
    model: int
    reference: int


@dataclass(frozen=True)
class LabelMatch:
    """How a model's labels meet reference labels.

    Attributes:
        pairs: structures both sides have, in the model's value order.
        model_only: names the model segments and the reference does not label (not scored).
        reference_only: names the reference labels and the model does not segment (not scored).
    """

    pairs: tuple[LabelPair, ...]
    model_only: tuple[str, ...] = ()
    reference_only: tuple[str, ...] = ()

    @classmethod
    def identity(cls, table: LabelTable) -> LabelMatch:
        """Both sides numbered by ``table`` (a model scored on labels of its own numbering)."""
        return cls(tuple(LabelPair(table[v].name, v, v) for v in table))

    @property
    def names(self) -> list[str]:
        """The matched structures' names."""
        return [pair.name for pair in self.pairs]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the matched values per name and what only one side has."""
        return {
            "matched": {p.name: {"model": p.model, "reference": p.reference} for p in self.pairs},
            "model_only": list(self.model_only),
            "reference_only": list(self.reference_only),
        }


def _partners(label: Label, others: Iterable[Label]) -> list[Label]:
    return [other for other in others if same_structure(label, other)]


def match_labels(model: LabelTable, reference: LabelTable) -> LabelMatch:
    """Pair the structures of ``model`` with those of ``reference`` by code or name.

    Raises:
        LabelMismatch: a structure matches several on the other side, or no structure is shared.
    """
    pairs, model_only = [], []
    taken: dict[int, str] = {}
    for value in model:
        label = model[value]
        partners = _partners(label, reference.values())
        if len(partners) > 1:
            listed = ", ".join(f"{p.value} {p.name!r}" for p in partners)
            raise LabelMismatch(f"model label {label.name!r} matches several reference labels ({listed})")
        if not partners:
            model_only.append(label.name)
            continue
        partner = partners[0]
        if partner.value in taken:
            raise LabelMismatch(
                f"reference label {partner.value} {partner.name!r} matches two model labels "
                f"({taken[partner.value]!r} and {label.name!r})"
            )
        taken[partner.value] = label.name
        pairs.append(LabelPair(label.name, value, partner.value))
    reference_only = tuple(reference[v].name for v in reference if v not in taken)
    if not pairs:
        raise LabelMismatch(
            f"the model's labels ({', '.join(model[v].name for v in model)}) and the reference's "
            f"({', '.join(reference[v].name for v in reference)}) share no structure, by name or SNOMED CT code"
        )
    return LabelMatch(tuple(pairs), tuple(model_only), reference_only)


def check_structures(table: LabelTable) -> LabelTable:
    """``table``, once it names each structure once and at most :data:`~lrc.io.labels.MAX_STRUCTURES` of them.

    Raises:
        LabelMismatch: two labels name one structure (by name or code), or too many labels.
    """
    if len(table) > MAX_STRUCTURES:
        raise LabelMismatch(f"{len(table)} labels: a model learns at most {MAX_STRUCTURES} structures")
    labels = list(table.values())
    for position, label in enumerate(labels):
        for other in labels[position + 1 :]:
            if same_structure(label, other):
                raise LabelMismatch(
                    f"labels {label.value} {label.name!r} and {other.value} {other.name!r} name the same structure"
                )
    return table


def number_labels(labels: LabelTable, numbering: LabelTable | None) -> LabelTable:
    """``labels`` with the values (and names, colours, codes) ``numbering`` gives the same structures.

    A structure ``numbering`` has keeps its entry there; a new one keeps its own value when no
    structure of ``numbering`` uses it, else takes the next value above every value in use.

    Raises:
        LabelMismatch: one structure of ``labels`` matches several of ``numbering``, or two match one.
    """
    if numbering is None:
        return labels
    kept: dict[int, Label] = {}
    new: list[Label] = []
    for value in labels:
        label = labels[value]
        partners = _partners(label, numbering.values())
        if len(partners) > 1:
            listed = ", ".join(f"{p.value} {p.name!r}" for p in partners)
            raise LabelMismatch(f"label {label.name!r} matches several labels of the model it extends ({listed})")
        if not partners:
            new.append(label)
            continue
        if partners[0].value in kept:
            raise LabelMismatch(
                f"labels {kept[partners[0].value].name!r} and {label.name!r} are both {partners[0].name!r}"
            )
        kept[partners[0].value] = partners[0]
    used = set(numbering)
    out = list(kept.values()) + [label for label in new if label.value not in used]
    used |= {label.value for label in out}
    for label in new:
        if label.value in set(numbering):
            value = max(used) + 1
            used.add(value)
            out.append(Label(value, label.name, label.color, label.category, label.type))
    return LabelTable(out)


def label_changes(candidate: LabelTable, current: LabelTable) -> dict[str, Any]:
    """How ``candidate``'s labels differ from ``current``'s: ``{}`` when they are the same.

    Keys (present only when not empty): ``added`` and ``removed`` (names), ``renumbered``
    (name -> [current value, candidate value]).
    """
    added, renumbered = [], {}
    matched: set[int] = set()
    for value in candidate:
        label = candidate[value]
        partners = _partners(label, current.values())
        if not partners:
            added.append(label.name)
            continue
        partner = partners[0]
        matched.add(partner.value)
        if partner.value != value:
            renumbered[label.name] = [partner.value, value]
    removed = [current[v].name for v in current if v not in matched]
    changes: dict[str, Any] = {"added": added, "removed": removed, "renumbered": renumbered}
    return {key: item for key, item in changes.items() if item}


def describe_changes(changes: dict[str, Any]) -> str:
    """One line for people: what :func:`label_changes` found."""
    parts = []
    if changes.get("added"):
        parts.append(f"adds {', '.join(changes['added'])}")
    if changes.get("removed"):
        parts.append(f"drops {', '.join(changes['removed'])}")
    if changes.get("renumbered"):
        moved = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changes["renumbered"].items())
        parts.append(f"writes other values ({moved})")
    return "; ".join(parts)
