"""Label tables: SNOMED codes for known organs, JSON in and out, checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lrc.io.labels import TISSUE, Label, LabelTable


def test_known_and_unknown_names():
    table = LabelTable.from_names({1: "Liver", 2: "kidney right", 3: "IVC", 4: "tumour"})
    assert table[1].type == ("SCT", "10200004", "Liver")
    assert table[2].type == ("SCT", "9846003", "Right kidney")
    assert table[3].type[1] == "64131007"
    assert table[4].type == TISSUE
    assert table[4].name == "tumour"
    assert len({table[v].color for v in table}) == 4


def test_totalsegmentator_class_map_reads(shared_data: Path, tmp_path: Path):
    classes = json.loads((shared_data / "nifti" / "totalsegmentator_class_map.json").read_text())
    (tmp_path / "map.json").write_text(json.dumps(classes["total"]))
    table = LabelTable.from_json(tmp_path / "map.json")
    assert len(table) == 117
    assert table[5].name == "liver"
    assert table[5].type[1] == "10200004"


def test_json_round_trip(tmp_path: Path):
    table = LabelTable([Label.named(1, "spleen", (1, 2, 3)), Label.named(9, "lesion")])
    (tmp_path / "t.json").write_text(json.dumps(table.to_json()))
    back = LabelTable.from_json(tmp_path / "t.json")
    assert [back[v] for v in back] == [table[v] for v in table]


def test_refusals():
    with pytest.raises(ValueError, match="appears twice"):
        LabelTable([Label.named(1, "a"), Label.named(1, "b")])
    with pytest.raises(ValueError, match=r"1 to 65535 \(0 is background\)"):
        Label.named(0, "background")


def test_structures_have_colours_of_their_own_whatever_their_values():
    """Liver and spleen were near twins when coloured by value (TotalSegmentator's 5 and 1); known structures
    now keep one colour each, far from the others of the abdomen, and unknown ones follow a palette."""
    abdomen = ["liver", "spleen", "kidney_right", "kidney_left", "stomach", "aorta", "inferior_vena_cava"]
    abdomen += ["pancreas", "gallbladder", "esophagus", "duodenum", "colon", "small_bowel", "portal_vein"]
    colours = {name: np.array(Label.named(1 + i, name).color) for i, name in enumerate(abdomen)}
    for a in abdomen:
        for b in abdomen:
            if a < b:
                assert np.linalg.norm(colours[a] - colours[b]) > 60, (a, b)
    assert Label.named(5, "liver").color == Label.named(1, "Liver").color  # by structure, not value
    assert Label.named(3, "tumour").color != Label.named(4, "cyst").color
