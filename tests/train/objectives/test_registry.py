"""The objectives by name: what each configuration composes, what they need, unknown names refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lrc.train.objectives import OBJECTIVES, Need, UnknownObjective, build, configured, needs_of, objective_type
from tests.train.objectives.conftest import config

BOTH = {"decorrelation_weight": 0.5, "restore_weight": 2.0}


@pytest.mark.parametrize(
    ("method", "changes", "names"),
    [
        ("moco", {}, ["moco"]),
        ("lrc", {}, ["lrc"]),
        ("moco+lrc", {}, ["moco", "lrc"]),
        ("supervised+lrc", {}, ["lrc", "supervised"]),
        ("moco", {"decorrelation_weight": 1.0}, ["moco", "decorrelation"]),
        ("lrc", {"restore_weight": 1.0}, ["lrc", "restoration"]),
        (
            "moco+lrc",
            {"decorrelation_weight": 0.5, "restore_weight": 2.0},
            ["moco", "lrc", "decorrelation", "restoration"],
        ),
        ("supervised+lrc", {"decorrelation_weight": 1.0}, ["lrc", "decorrelation", "supervised"]),
    ],
)
def test_a_configuration_composes_its_objectives_in_order(method, changes, names):
    assert configured(config(method=method, **changes)) == names


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(UnknownObjective, match=r"unknown pre-training objective 'simclr'; known: moco, lrc, "):
        objective_type("simclr")
    with pytest.raises(ValueError, match="'simclr'"):  # a ValueError, as other bad settings
        build(["moco", "simclr"], config(), None)  # type: ignore[arg-type]
    settings = config()
    settings.method = "moco+simclr"  # past the configuration's own check
    with pytest.raises(UnknownObjective, match="'simclr'"):
        configured(settings)


def test_each_objective_is_registered_under_its_name():
    assert list(OBJECTIVES) == ["moco", "lrc", "decorrelation", "restoration", "supervised"]
    assert all(kind.name == name for name, kind in OBJECTIVES.items())
    assert len({kind.term for kind in OBJECTIVES.values()}) == len(OBJECTIVES)  # metrics do not collide


@pytest.mark.parametrize(
    ("names", "needs"),
    [
        (["moco"], set()),
        (["moco", "lrc"], {Need.DENSE}),
        (["lrc", "restoration"], {Need.DENSE, Need.CLEAN, Need.IMAGE_HEAD}),
        (["lrc", "supervised"], {Need.DENSE, Need.LABELS}),
    ],
)
def test_needs_are_the_union_of_the_objectives(names, needs):
    assert needs_of(names) == needs


def test_built_objectives_weigh_as_configured(online):
    settings = replace(config(method="moco+lrc"), lambda_local=0.5, decorrelation_weight=2.0, restore_weight=3.0)
    objectives = build(configured(settings), settings, online)
    assert [(o.name, o.weight) for o in objectives] == [
        ("moco", 1.0),
        ("lrc", 0.5),
        ("decorrelation", 2.0),
        ("restoration", 3.0),
    ]
