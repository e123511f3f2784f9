"""Model versions: registration, lookup by ``name[:version]``, promotion with its gate, roll-back.

A project sees its own versions and the :data:`~core.records.projects.SHARED` ones (the starter
model). Shared versions are read-only: a project adds its own versions to a shared model's name
(numbered after the shared ones), and promoting one of them makes it the project's production
version of that name, in front of the shared one; rolling back brings the shared one back. Other
projects keep seeing only the shared versions.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden, InvalidRequest, NotFound, PromotionRefused
from core.records.projects import SHARED
from core.records.tables import MAX_VERSION, ModelVersion, Promotion
from lrc.io.labels import LabelTable
from lrc.label_match import describe_changes
from lrc.label_match import label_changes as changes_between

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # a folder name, and free of the ':' of 'name:version'
MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def model_name_from(text: str) -> str:
    """A model name (:data:`MODEL_NAME`) made from free text, such as a dataset's name.

    Runs of other characters become one ``-``, runs of dots one dot; what leads up to the first letter
    or digit goes, and separators at the end; ``model`` when nothing is left.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name)[:128].rstrip("-._")
    return name or "model"


def version_number(reference: str, text: str) -> int:
    """The version number ``text`` (what follows ':' in ``reference``): ASCII digits, 1 to :data:`MAX_VERSION`.

    Raises:
        InvalidRequest: anything else. A larger number binds to no database column (SQLite raises
            OverflowError, PostgreSQL an out-of-range error), and ``str.isdigit`` also takes digits
            such as '²' that ``int`` refuses.
    """
    digits = text.lstrip("0")
    if text.isascii() and text.isdigit() and 0 < len(digits) <= len(str(MAX_VERSION)) and int(digits) <= MAX_VERSION:
        return int(digits)
    raise InvalidRequest(
        f"model {reference[:140]!r}: the version after ':' must be a whole number from 1 to {MAX_VERSION}"
    )


def _visible(project: str) -> ColumnElement[bool]:
    return ModelVersion.project.in_([project, SHARED])


def register(
    session: Session,
    name: str,
    path: str,
    card: dict[str, Any],
    project: str,
    *,
    status: str = "candidate",
    comparison: dict[str, Any] | None = None,
    parent_id: str | None = None,
    job_id: str | None = None,
) -> ModelVersion:
    """Add the next version of ``name`` to ``project`` (or to every project: :data:`SHARED`).

    The number is ``max + 1`` over the versions ``project`` sees, read under the model's lock (see
    :func:`_lock_model`): fine-tunings of one model that finish together get consecutive numbers.

    Raises:
        Conflict: a shared version would take a name some project already uses.
    """
    _lock_model(session, name)
    if project == SHARED and owner(session, name) is not None:
        raise Conflict(f"model {name} already exists; a shared model needs a name no project uses")
    latest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name, _visible(project)))
    version = ModelVersion(
        project=project,
        name=name,
        version=(latest or 0) + 1,
        kind=str(card.get("kind", "segmentation")),
        status=status,
        path=path,
        card=card,
        comparison=comparison or {},
        parent_id=parent_id,
        job_id=job_id,
    )
    session.add(version)
    session.flush()
    return version


def _lock_model(session: Session, name: str) -> None:
    """Hold the lock on model ``name``'s numbering until the session's transaction ends.

    Why a lock and not a retry on the unique constraint: after a failed insert PostgreSQL refuses the
    rest of the transaction, so a retry needs a savepoint around the insert (or the caller's whole
    transaction redone), and pysqlite's implicit transactions do not support savepoints reliably;
    with the lock, ``register`` stays a plain part of the caller's transaction. Registrations are
    rare (a fine-tuning's end), so waiting for each other costs nothing. The lock is per name, not
    per project, because a project's versions are numbered after the shared ones of that name.

    PostgreSQL: a transaction-scoped advisory lock on a key derived from the name; the ``max`` read
    after it (READ COMMITTED, the engine's default) sees every version committed before. SQLite has
    one write lock for the whole database: a write that changes nothing takes it now, before the
    reads, where otherwise the insert would take it after them (pysqlite begins the transaction
    at the first write).
    """
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"lrc.model_versions:{name}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)  # advisory lock keys are bigint
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        session.execute(text("UPDATE model_versions SET version = version WHERE 1 = 0"))


def owner(session: Session, name: str) -> str | None:
    """The project (or :data:`SHARED`) that has a model ``name``, if any (for start-up duties, never for callers)."""
    return session.scalars(select(ModelVersion.project).where(ModelVersion.name == name).limit(1)).first()


def versions(session: Session, project: str, name: str | None = None) -> list[ModelVersion]:
    """Versions ``project`` sees (of one model, or all), by name and version."""
    query = select(ModelVersion).where(_visible(project)).order_by(ModelVersion.name, ModelVersion.version)
    if name is not None:
        query = query.where(ModelVersion.name == name)
    return list(session.scalars(query))


def get_version(session: Session, project: str, name: str, number: int) -> ModelVersion:
    """One version ``project`` sees, or :class:`NotFound`."""
    query = select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == number, _visible(project))
    found = session.scalars(query).first()
    if found is None:
        raise NotFound("model version", f"{name}:{number}")
    return found


def production(session: Session, project: str, name: str) -> ModelVersion | None:
    """The production version of ``name`` in ``project``: the project's own, else the shared one."""
    query = select(ModelVersion).where(
        ModelVersion.name == name, ModelVersion.status == "production", _visible(project)
    )
    found = list(session.scalars(query))
    own = [v for v in found if v.project == project]
    return (own or found)[0] if found else None


def resolve(session: Session, project: str, reference: str | None, kind: str = "segmentation") -> ModelVersion:
    """``name:version``, ``name`` (its production version) or ``None``: the default model.

    The default is the project's own production model of ``kind`` when it has exactly one; when it
    has none, the shared one (the starter) when there is exactly one; otherwise the caller must name
    one.

    Raises:
        NotFound: no such model, or no production version.
        InvalidRequest: ambiguous or of the wrong kind.
    """
    if reference is None:
        names = sorted({v.name for v in versions(session, project) if v.status == "production"})
        found = [v for v in (production(session, project, n) for n in names) if v is not None and v.kind == kind]
        own = [v for v in found if v.project == project]
        chosen = own or found
        if not chosen:
            raise NotFound("production model", "(default)")
        if len(chosen) > 1:
            listed = ", ".join(v.name for v in chosen)
            whose = "this project has several production models" if own else "several shared production models"
            raise InvalidRequest(f"{whose} ({listed}); name one with 'model'")
        return chosen[0]
    name, _, number = reference.partition(":")
    if number:
        version = get_version(session, project, name, version_number(reference, number))
    else:
        prod = production(session, project, name)
        if prod is None:
            raise NotFound("production version of model", name)
        version = prod
    if version.kind != kind:
        raise InvalidRequest(f"model {version.name}:{version.version} is a {version.kind} model; {kind} is needed")
    return version


def status_in(session: Session, project: str, version: ModelVersion) -> str:
    """The status ``project`` sees: a shared production version behind the project's own is ``archived``."""
    if version.project == SHARED and version.status == "production":
        current = production(session, project, version.name)
        return "production" if current is not None and current.id == version.id else "archived"
    return version.status


def promote(
    session: Session, project: str, candidate: ModelVersion, by: str | None, override: bool, reason: str
) -> Promotion:
    """Make ``candidate`` the production version of its model in ``project``, if the gate allows.

    The gate: the candidate's held-out score is at least the production version's, both scored on
    the candidate's held-out cases (``comparison``, computed when the candidate was trained) and
    against the version that is production now. ``override`` skips it and is recorded.

    Raises:
        Forbidden: the candidate is shared (read-only).
        PromotionRefused: the gate refused and there is no override.
        Conflict: the version is already production, or cannot serve segmentations.
    """
    if candidate.project != project:
        raise Forbidden(f"{candidate.name}:{candidate.version} is shared by every project and read-only")
    if candidate.kind != "segmentation":
        raise Conflict(f"{candidate.name}:{candidate.version} is a {candidate.kind} model; it cannot segment")
    if candidate.status == "production":
        raise Conflict(f"{candidate.name}:{candidate.version} is already production")
    current = production(session, project, candidate.name)
    verdict = gate(candidate, current)
    if verdict and not override:
        raise PromotionRefused(verdict)
    if verdict and label_changes(candidate, current) and not reason.strip():
        raise InvalidRequest(
            f"{candidate.name}:{candidate.version} changes what the model's labels mean: an override needs a reason"
        )
    if current is not None and current.project == project:
        current.status = "archived"  # a shared one stays production for the other projects
    candidate.status = "production"
    record = Promotion(
        project=project,
        name=candidate.name,
        from_version_id=current.id if current else None,
        to_version_id=candidate.id,
        action="promote",
        override=bool(override and verdict),
        reason=reason or (f"override: {verdict}" if verdict else "gate passed"),
        by=by,
    )
    session.add(record)
    session.flush()
    return record


def gate(candidate: ModelVersion, current: ModelVersion | None) -> str | None:
    """Why the gate refuses ``candidate`` against ``current`` (``None``: it passes).

    It refuses a candidate whose labels differ from production's in names or values (a model name
    keeps one meaning), one not compared with ``current`` on the same held-out data, and one that
    scored lower there.
    """
    if current is None:
        return None
    verdicts = []
    if changes := label_changes(candidate, current):
        verdicts.append(
            f"{candidate.name}:{candidate.version} {describe_changes(changes)} against production "
            f"{current.name}:{current.version}: a model name keeps one meaning (fine-tune under a new name, "
            "or override with a reason)"
        )
    comparison = candidate.comparison or {}
    mine, theirs = comparison.get("candidate_score"), comparison.get("production_score")
    if comparison.get("production_id") != current.id:
        verdicts.append(
            f"{candidate.name}:{candidate.version} was not compared with the current production version "
            f"{current.name}:{current.version} on the same held-out data"
        )
    elif mine is None or theirs is None:
        verdicts.append(f"no held-out score to compare ({comparison.get('note', 'no held-out cases')})")
    elif mine < theirs:
        verdicts.append(
            f"held-out mean Dice {mine:.4f} of {candidate.name}:{candidate.version} is below "
            f"{theirs:.4f} of production {current.name}:{current.version} on the same "
            f"{comparison.get('cases', '?')} case(s)"
        )
    return "; ".join(verdicts) or None


def label_changes(candidate: ModelVersion, current: ModelVersion | None) -> dict[str, Any]:
    """How ``candidate``'s label table differs from ``current``'s (:func:`lrc.label_match.label_changes`)."""
    if current is None or candidate.kind != "segmentation" or current.kind != "segmentation":
        return {}
    mine, theirs = candidate.card.get("labels"), current.card.get("labels")
    if not mine or not theirs:
        return {}
    return changes_between(LabelTable.from_dict(mine), LabelTable.from_dict(theirs))


def rollback(session: Session, project: str, name: str, by: str | None, reason: str) -> Promotion:
    """Put back the version that was production in ``project`` before the current one.

    Raises:
        NotFound: ``project`` sees no model ``name``.
        Forbidden: the production version is shared (read-only).
        Conflict: no production version, or none before it.
    """
    if not versions(session, project, name):
        raise NotFound("model", name)
    current = production(session, project, name)
    if current is None:
        raise Conflict(f"model {name} has no production version to roll back")
    if current.project != project:
        raise Forbidden(f"{name}:{current.version} is shared by every project and read-only; nothing to roll back")
    last = session.scalars(
        select(Promotion)
        .where(
            Promotion.project == project,
            Promotion.name == name,
            Promotion.to_version_id == current.id,
            Promotion.action == "promote",
        )
        .order_by(Promotion.id.desc())
    ).first()
    if last is None or last.from_version_id is None:
        raise Conflict(f"{name}:{current.version} has no earlier production version to roll back to")
    previous = session.get(ModelVersion, last.from_version_id)
    assert previous is not None
    current.status = "archived"
    if previous.project == project:
        previous.status = "production"  # a shared one is production already: it shows through again
    record = Promotion(
        project=project,
        name=name,
        from_version_id=current.id,
        to_version_id=previous.id,
        action="rollback",
        reason=reason,
        by=by,
    )
    session.add(record)
    session.flush()
    return record


def history(session: Session, project: str, name: str) -> list[Promotion]:
    """Promotions and roll-backs of a model in ``project``, oldest first."""
    query = select(Promotion).where(Promotion.project == project, Promotion.name == name).order_by(Promotion.id)
    return list(session.scalars(query))


def find(session: Session, project: str, reference: str) -> ModelVersion:
    """``name:version``, or ``name``: its production version, else its latest (any kind), as ``project`` sees them."""
    name, _, number = reference.partition(":")
    if number:
        return get_version(session, project, name, version_number(reference, number))
    found = production(session, project, name)
    if found is not None:
        return found
    every = versions(session, project, name)
    if not every:
        raise NotFound("model", name)
    return every[-1]


def registered_by(session: Session, job_ids: list[str], paths: list[str]) -> tuple[set[str], set[str]]:
    """Those of ``job_ids`` that registered a version, and those of ``paths`` (folders) a version is at."""
    jobs: set[str] = set()
    folders: set[str] = set()
    for start in range(0, max(len(job_ids), len(paths)), 500):
        ids, places = job_ids[start : start + 500], paths[start : start + 500]
        query = select(ModelVersion.job_id, ModelVersion.path).where(
            ModelVersion.job_id.in_(ids) | ModelVersion.path.in_(places)
        )
        for job_id, path in session.execute(query):
            if job_id is not None:
                jobs.add(job_id)
            folders.add(path)
    return jobs & set(job_ids), folders & set(paths)
