"""Routing rules: parsing, matching, and the header attributes they read."""

from __future__ import annotations

from pathlib import Path

import highdicom
import pydicom
import pytest
from pydicom.uid import generate_uid

from gateway.errors import InvalidConfig
from gateway.rules import Route, Rules, SeriesInfo, load_rules, parse_rules
from tests.gateway.conftest import ct_series

RULES = {
    "rules": [
        {"name": "small", "Modality": "CT", "MinSlices": 0, "SeriesDescription": "(?i)scout", "model": "ignore"},
        {"name": "abdomen", "Modality": ["CT"], "BodyPartExamined": ["abdomen", "ABDOMENPELVIS"], "model": "ct-abd"},
        {"name": "big", "Modality": "CT", "MinSlices": 100, "model": "ct-big:3"},
        {"name": "mr", "Modality": "MR", "model": "mr"},
    ],
    "default": "ignore",
}


@pytest.mark.parametrize(
    ("info", "route"),
    [
        (SeriesInfo("CT", "ABDOMEN", "Scout 1", 2), Route(None, True, "small")),
        (SeriesInfo("CT", "ABDOMEN", "Abd 5mm", 40), Route("ct-abd", False, "abdomen")),
        (SeriesInfo("ct", "abdomenpelvis", "", 40), Route("ct-abd", False, "abdomen")),
        (SeriesInfo("CT", "CHEST", "Lung", 300), Route("ct-big:3", False, "big")),
        (SeriesInfo("CT", "CHEST", "Lung", 99), Route(None, True, "default")),
        (SeriesInfo("MR", "", "", 1), Route("mr", False, "mr")),
    ],
)
def test_first_matching_rule_decides(info: SeriesInfo, route: Route):
    assert parse_rules(RULES).route(info) == route


def test_without_rules_or_default_the_fallback_model_is_used():
    assert Rules(fallback_model="m").route(SeriesInfo("CT", "", "", 1)) == Route("m")
    assert (
        parse_rules({"rules": [{"Modality": "MR", "model": "mr"}]}, "m").route(SeriesInfo("CT", "", "", 1)).model == "m"
    )
    assert load_rules(None).route(SeriesInfo("CT", "", "", 1)) == Route(None)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "expected a mapping"),
        ({"rules": [{"Modality": "CT"}]}, "'model'"),
        ({"rules": [{"Modaliy": "CT", "model": "x"}]}, "unknown keys"),
        ({"rules": [{"SeriesDescription": "(", "model": "x"}]}, "regular expression"),
        ({"rules": [{"MinSlices": -1, "model": "x"}]}, "MinSlices"),
        ({"rules": [{"Modality": {"a": 1}, "model": "x"}]}, "a value or a list"),
        ({"rules": [], "default": 3}, "'default'"),
    ],
)
def test_invalid_rules_say_what_is_wrong(document: object, message: str):
    with pytest.raises(InvalidConfig, match=message):
        parse_rules(document)


def test_rules_file(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - Modality: CT\n    MinSlices: 3\n    model: ct\ndefault: ignore\n")
    rules = load_rules(path)
    assert rules.route(SeriesInfo("CT", "", "", 3)).model == "ct"
    path.write_text("rules: [\n")
    with pytest.raises(InvalidConfig, match=str(path)):
        load_rules(path)


def test_series_info_is_read_from_the_headers(shared_data: Path, tmp_path: Path):
    files = ct_series(shared_data, tmp_path / "ct", count=3)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.BodyPartExamined = "ABDOMEN"
        ds.SeriesDescription = "Abd 5mm"
        ds.save_as(path)
    assert SeriesInfo.read(tmp_path / "ct") == SeriesInfo("CT", "ABDOMEN", "Abd 5mm", 3)


def test_frames_of_an_enhanced_ct_count_as_slices(shared_data: Path, tmp_path: Path):
    slices = [pydicom.dcmread(p) for p in ct_series(shared_data, tmp_path / "ct", count=4)]
    for ds in slices:  # the real header's one-component name ("JANCT000") makes highdicom warn
        ds.PatientName = f"{ds.PatientName}^"
    enhanced = highdicom.legacy.LegacyConvertedEnhancedCTImage(slices, generate_uid(), 2, generate_uid(), 1)
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "1.dcm")
    assert SeriesInfo.read(tmp_path / "enhanced").slices == 4
