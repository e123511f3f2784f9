"""core/records/registry.py: version numbers under concurrency, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from core.errors import InvalidRequest, NotFound
from core.records import Database, registry
from core.records.projects import DEFAULT, SHARED
from core.records.tables import ModelVersion

CARD = {"kind": "segmentation"}
RACERS = 4  # fine-tunings of one model finishing together
ROUNDS = 5  # one round can miss the race on the old code; five in a row do not


def _register_together(db: Database, name: str, project: str) -> list[int]:
    """``RACERS`` threads, each with its own connection, register a version of ``name`` at the same instant."""
    barrier = threading.Barrier(RACERS)

    def one(index: int) -> int:
        barrier.wait(timeout=30)
        with db.session() as session:
            return registry.register(session, name, f"/models/{name}/{index}", CARD, project).version

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


def test_versions_registered_at_the_same_time_get_distinct_consecutive_numbers(db: Database):
    with db.session() as session:
        registry.register(session, "liver", "/models/liver/shared", CARD, SHARED, status="production")
    for round_ in range(ROUNDS):
        numbers = _register_together(db, "liver", DEFAULT)
        first = 2 + round_ * RACERS  # after the shared version 1 and the earlier rounds
        assert sorted(numbers) == list(range(first, first + RACERS))
    with db.session() as session:
        stored = session.scalars(select(ModelVersion.version).where(ModelVersion.project == DEFAULT)).all()
    assert sorted(stored) == list(range(2, 2 + ROUNDS * RACERS))


def test_other_models_are_numbered_on_their_own(db: Database):
    for name in ("liver", "spleen"):
        assert sorted(_register_together(db, name, DEFAULT)) == list(range(1, RACERS + 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abdomen-2", "abdomen-2"),  # a valid name stays as it is
        ("Liver CT", "Liver-CT"),
        ("Liver  CT (2024)", "Liver-CT-2024"),
        ("../../x", "x"),
        ("../../../escape", "escape"),
        ("a/b\\c", "a-b-c"),
        ("ct:2", "ct-2"),  # 'name:version' must still address it
        ("a..b", "a.b"),
        ("_hidden.", "hidden"),
        ("Leber (Übersicht)", "Leber-bersicht"),
        (":::", "model"),
        ("", "model"),
        ("..", "model"),
        ("x" * 200, "x" * 128),
    ],
)
def test_model_names_made_from_free_text(text: str, expected: str):
    made = registry.model_name_from(text)
    assert made == expected
    assert registry.MODEL_NAME.fullmatch(made)


@pytest.mark.parametrize(
    "number",
    [
        "99999999999999999999",  # past 64 bits: SQLite's driver cannot bind it (OverflowError)
        str(2**31),  # past the INTEGER column: PostgreSQL refuses it (out of range)
        str(2**63),
        "9" * 5000,  # past int()'s 4300-digit limit
        "0",
        "²",  # str.isdigit() takes it, int() does not
        "١",  # an Arabic-Indic one
        "-1",
        "1.0",
        " 1",
    ],
)
@pytest.mark.parametrize("lookup", [registry.resolve, registry.find])
def test_version_numbers_out_of_range_are_invalid_requests(db: Database, lookup: Any, number: str):
    with db.session() as session:
        registry.register(session, "liver", "/models/liver/1", CARD, SHARED, status="production")
    with db.session() as session, pytest.raises(InvalidRequest, match=f"whole number from 1 to {2**31 - 1}"):
        lookup(session, DEFAULT, f"liver:{number}")


def test_version_numbers_in_range_are_looked_up(db: Database):
    with db.session() as session:
        registry.register(session, "liver", "/models/liver/1", CARD, SHARED, status="production")
    with db.session() as session:
        assert registry.resolve(session, DEFAULT, "liver:1").version == 1
        assert registry.find(session, DEFAULT, "liver:0001").version == 1
        with pytest.raises(NotFound):  # the largest number a version can have: a valid request, no such version
            registry.find(session, DEFAULT, f"liver:{2**31 - 1}")


def test_the_default_model_is_the_projects_own_production_model_before_the_shared_one(db: Database):
    with db.session() as session:
        starter = registry.register(session, "starter", "/models/s", CARD, SHARED, status="production")
        assert registry.resolve(session, DEFAULT, None).id == starter.id  # nothing of its own: the shared one
        own = registry.register(session, "liver", "/models/l", CARD, DEFAULT, status="production")
        assert registry.resolve(session, DEFAULT, None).id == own.id
        assert registry.resolve(session, "other", None).id == starter.id  # another project: still the starter
        registry.register(session, "kidney", "/models/k", CARD, DEFAULT, status="production")
        with pytest.raises(InvalidRequest, match=r"this project has several production models \(kidney, liver\)"):
            registry.resolve(session, DEFAULT, None)
