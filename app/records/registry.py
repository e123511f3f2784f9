"""Model versions: registration, lookup by ``name[:version]``, promotion with its gate, roll-back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidRequest, NotFound, PromotionRefused
from app.records.models import ModelVersion, Promotion


def register(
    session: Session,
    name: str,
    path: str,
    card: dict[str, Any],
    *,
    status: str = "candidate",
    comparison: dict[str, Any] | None = None,
    parent_id: str | None = None,
    job_id: str | None = None,
) -> ModelVersion:
    """Add the next version of ``name``."""
    latest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)) or 0
    version = ModelVersion(
        name=name,
        version=latest + 1,
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


def versions(session: Session, name: str | None = None) -> list[ModelVersion]:
    """Versions (of one model, or all), by name and version."""
    query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
    if name is not None:
        query = query.where(ModelVersion.name == name)
    return list(session.scalars(query))


def get_version(session: Session, name: str, number: int) -> ModelVersion:
    """One version, or :class:`NotFound`."""
    found = session.scalars(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == number)
    ).first()
    if found is None:
        raise NotFound("model version", f"{name}:{number}")
    return found


def production(session: Session, name: str) -> ModelVersion | None:
    """The production version of ``name``, if any."""
    return session.scalars(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.status == "production")
    ).first()


def resolve(session: Session, reference: str | None, kind: str = "segmentation") -> ModelVersion:
    """``name:version``, ``name`` (its production version) or ``None`` (the only production model).

    Raises:
        NotFound: no such model, or no production version.
        InvalidRequest: ambiguous or of the wrong kind.
    """
    if reference is None:
        found = list(
            session.scalars(select(ModelVersion).where(ModelVersion.status == "production", ModelVersion.kind == kind))
        )
        if not found:
            raise NotFound("production model", "(default)")
        if len(found) > 1:
            names = ", ".join(sorted(v.name for v in found))
            raise InvalidRequest(f"several production models ({names}); name one with 'model'")
        return found[0]
    name, _, number = reference.partition(":")
    if number:
        if not number.isdigit():
            raise InvalidRequest(f"model {reference!r}: the version after ':' must be a number")
        version = get_version(session, name, int(number))
    else:
        prod = production(session, name)
        if prod is None:
            raise NotFound("production version of model", name)
        version = prod
    if version.kind != kind:
        raise InvalidRequest(f"model {version.name}:{version.version} is a {version.kind} model; {kind} is needed")
    return version


def promote(session: Session, candidate: ModelVersion, by: str | None, override: bool, reason: str) -> Promotion:
    """Make ``candidate`` the production version of its model, if the gate allows.

    The gate: the candidate's held-out score is at least the production version's, both scored on
    the candidate's held-out cases (``comparison``, computed when the candidate was trained) and
    against the version that is production now. ``override`` (admins) skips it and is recorded.

    Raises:
        PromotionRefused: the gate refused and there is no override.
        Conflict: the version is already production, or cannot serve segmentations.
    """
    if candidate.kind != "segmentation":
        raise Conflict(f"{candidate.name}:{candidate.version} is a {candidate.kind} model; it cannot segment")
    if candidate.status == "production":
        raise Conflict(f"{candidate.name}:{candidate.version} is already production")
    current = production(session, candidate.name)
    verdict = gate(candidate, current)
    if verdict and not override:
        raise PromotionRefused(verdict)
    if current is not None:
        current.status = "archived"
    candidate.status = "production"
    record = Promotion(
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
    """Why the gate refuses ``candidate`` against ``current`` (``None``: it passes)."""
    if current is None:
        return None
    comparison = candidate.comparison or {}
    if comparison.get("production_id") != current.id:
        return (
            f"{candidate.name}:{candidate.version} was not compared with the current production version "
            f"{current.name}:{current.version} on the same held-out data"
        )
    mine, theirs = comparison.get("candidate_score"), comparison.get("production_score")
    if mine is None or theirs is None:
        return f"no held-out score to compare ({comparison.get('note', 'no held-out cases')})"
    if mine < theirs:
        return (
            f"held-out mean Dice {mine:.4f} of {candidate.name}:{candidate.version} is below "
            f"{theirs:.4f} of production {current.name}:{current.version} on the same "
            f"{comparison.get('cases', '?')} case(s)"
        )
    return None


def rollback(session: Session, name: str, by: str | None, reason: str) -> Promotion:
    """Put back the version that was production before the current one.

    Raises:
        Conflict: no production version, or none before it.
    """
    current = production(session, name)
    if current is None:
        raise Conflict(f"model {name} has no production version to roll back")
    last = session.scalars(
        select(Promotion)
        .where(Promotion.name == name, Promotion.to_version_id == current.id, Promotion.action == "promote")
        .order_by(Promotion.id.desc())
    ).first()
    if last is None or last.from_version_id is None:
        raise Conflict(f"{name}:{current.version} has no earlier production version to roll back to")
    previous = session.get(ModelVersion, last.from_version_id)
    assert previous is not None
    current.status, previous.status = "archived", "production"
    record = Promotion(
        name=name, from_version_id=current.id, to_version_id=previous.id, action="rollback", reason=reason, by=by
    )
    session.add(record)
    session.flush()
    return record


def history(session: Session, name: str) -> list[Promotion]:
    """Promotions and roll-backs of a model, oldest first."""
    return list(session.scalars(select(Promotion).where(Promotion.name == name).order_by(Promotion.id)))


def find(session: Session, reference: str) -> ModelVersion:
    """``name:version``, or ``name``: its production version, else its latest (any kind)."""
    name, _, number = reference.partition(":")
    if number:
        if not number.isdigit():
            raise InvalidRequest(f"model {reference!r}: the version after ':' must be a number")
        return get_version(session, name, int(number))
    found = production(session, name)
    if found is not None:
        return found
    every = versions(session, name)
    if not every:
        raise NotFound("model", name)
    return every[-1]
