"""Label tables matched by SNOMED CT code or name; numbering kept; changes between tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrc.io.labels import ANATOMICAL_STRUCTURE, SCT, Label, LabelTable
from lrc.label_match import LabelMismatch, LabelPair, label_changes, match_labels, number_labels

STARTER = LabelTable.from_names({1: "liver", 2: "spleen", 3: "stomach", 4: "aorta"})
TOTALSEG = LabelTable.from_names({5: "liver", 1: "spleen", 6: "stomach", 52: "aorta"})


def test_totalsegmentator_values_meet_the_starters_by_name():
    match = match_labels(STARTER, TOTALSEG)
    assert match.pairs == (
        LabelPair("liver", 1, 5),
        LabelPair("spleen", 2, 1),
        LabelPair("stomach", 3, 6),
        LabelPair("aorta", 4, 52),
    )
    assert (match.model_only, match.reference_only) == ((), ())


def test_totalsegmentators_class_map_pairs_with_only_what_the_model_segments(shared_data: Path):
    classes = json.loads((shared_data / "nifti" / "totalsegmentator_class_map.json").read_text())["total"]
    reference = LabelTable.from_names({int(k): v for k, v in classes.items()})
    match = match_labels(STARTER, reference)
    assert {p.name: p.reference for p in match.pairs} == {"liver": 5, "spleen": 1, "stomach": 6, "aorta": 52}
    assert len(match.reference_only) == len(classes) - 4


def test_names_are_compared_as_spelt_loosely_and_codes_win():
    hepar = Label(7, "Hepar", (1, 2, 3), ANATOMICAL_STRUCTURE, (SCT, "10200004", "Liver"))
    match = match_labels(
        LabelTable([hepar, Label.named(9, "Inferior Vena-Cava")]), LabelTable.from_names({3: "liver", 4: "ivc"})
    )
    assert match.pairs == (LabelPair("Hepar", 7, 3), LabelPair("Inferior Vena-Cava", 9, 4))


def test_partial_overlap_lists_each_sides_extras():
    match = match_labels(STARTER, LabelTable.from_names({5: "liver", 7: "pancreas"}))
    assert match.pairs == (LabelPair("liver", 1, 5),)
    assert match.model_only == ("spleen", "stomach", "aorta")
    assert match.reference_only == ("pancreas",)
    assert match.to_json()["matched"] == {"liver": {"model": 1, "reference": 5}}


@pytest.mark.parametrize(
    ("reference", "needle"),
    [
        (LabelTable.from_names({5: "liver", 6: "Liver"}), "matches several reference labels"),
        (LabelTable.from_names({10: "kidney_left", 11: "femur"}), "share no structure"),
    ],
)
def test_unresolvable_tables_are_refused(reference: LabelTable, needle: str):
    with pytest.raises(LabelMismatch, match=needle):
        match_labels(STARTER, reference)


def test_a_reference_structure_matched_twice_is_refused():
    model = LabelTable(
        [Label.named(1, "liver"), Label(2, "hepar", (0, 0, 0), ANATOMICAL_STRUCTURE, (SCT, "10200004", "Liver"))]
    )
    with pytest.raises(LabelMismatch, match="matches two model labels"):
        match_labels(model, LabelTable.from_names({5: "liver"}))


def test_numbering_keeps_the_values_a_model_already_writes():
    dataset = LabelTable.from_names({5: "liver", 1: "spleen", 7: "pancreas", 3: "gallbladder"})
    numbered = number_labels(dataset, STARTER)
    assert {v: numbered[v].name for v in numbered} == {1: "liver", 2: "spleen", 7: "pancreas", 8: "gallbladder"}
    assert number_labels(dataset, None) is dataset
    assert numbered[1] == STARTER[1]  # the existing entry: name, colour and codes


def test_label_changes_name_what_moved():
    assert label_changes(STARTER, STARTER) == {}
    assert label_changes(TOTALSEG, STARTER) == {
        "renumbered": {"liver": [1, 5], "spleen": [2, 1], "stomach": [3, 6], "aorta": [4, 52]}
    }
    fewer = LabelTable.from_names({1: "liver", 5: "pancreas"})
    assert label_changes(fewer, STARTER) == {"added": ["pancreas"], "removed": ["spleen", "stomach", "aorta"]}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"liver": 5}', "key 'liver' is no label value"),
        ('{"1": {"colour": [1, 2, 3]}}', "label '1': a label is a name or an object with a 'name'"),
        ('{"0": "background"}', "label '0': label values are 1 to 65535"),
        ('{"1": {"name": "liver", "color": [300, 0, 0]}}', "0-255"),
        ("[1, 2]", "JSON object of label value -> name"),
        ("{", "not a readable JSON label table"),
    ],
)
def test_malformed_label_tables_say_which_key(tmp_path: Path, content: str, needle: str):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=needle) as raised:
        LabelTable.from_json(path)
    assert str(path) in str(raised.value)
