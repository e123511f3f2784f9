"""API keys: tokens are random, only their sha256 is stored; each key belongs to one project.

Tokens are found by their sha256 through the unique index (not by comparing a submitted token with
each stored hash). Timing cannot leak a token that way: what the lookup compares is the digest of
what the caller sent, and steering the bytes of a sha256 digest towards a stored one would need
preimages. ``hmac.compare_digest`` then checks the found row in constant time, so that a database
collation or index quirk can never make a near match count.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.records.projects import DEFAULT, check_name
from core.records.tables import ApiKey

ROLES = ("viewer", "submitter", "admin")
TOKEN_PREFIX = "lrc_"


def hash_token(token: str) -> str:
    """sha256 of a token (tokens are long random strings: no slow hash needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def role_allows(role: str, needed: str) -> bool:
    """True when ``role`` is at least ``needed`` (viewer < submitter < admin)."""
    return ROLES.index(role) >= ROLES.index(needed)


def create_key(
    session: Session, name: str, role: str, project: str = DEFAULT, token: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key of ``project`` (the project exists from its first key); return it and its token (shown once).

    Raises:
        ValueError: unknown role or invalid project name.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, role=role, project=check_name(project), token_sha256=hash_token(token))
    session.add(key)
    session.flush()
    return key, token


def find_key(session: Session, token: str) -> ApiKey | None:
    """The active key whose token this is, or ``None`` (see the module's docstring on timing)."""
    digest = hash_token(token)
    key = session.scalars(select(ApiKey).where(ApiKey.token_sha256 == digest)).first()
    if key is None or key.revoked or not hmac.compare_digest(key.token_sha256, digest):
        return None
    return key


def key_active(session: Session, key_id: str) -> bool:
    """True while the key with this id exists and is not revoked."""
    key = session.get(ApiKey, key_id)
    return key is not None and not key.revoked


def ensure_bootstrap_admin(session: Session, token: str) -> bool:
    """Create the bootstrap admin key (project ``default``) unless a key with that token exists; True when created."""
    if session.scalars(select(ApiKey).where(ApiKey.token_sha256 == hash_token(token))).first() is not None:
        return False
    create_key(session, "bootstrap-admin", "admin", DEFAULT, token)
    return True


def revoke_key(session: Session, key_id: str, project: str, keep_last_admin: bool = True) -> ApiKey:
    """Revoke a key of ``project``: its token fails from the next request on (revoking twice is a no-op).

    The key stays listed, marked revoked. The last active admin key of a project is kept unless
    ``keep_last_admin`` is false: without it nobody could manage the project's keys through the API
    (make another admin first). The command line may drop it: a leaked admin token must die at
    once, and the operator can make a new admin there.

    Raises:
        LookupError: ``project`` has no key ``key_id``.
        PermissionError: it is the project's last active admin key.
    """
    key = session.get(ApiKey, key_id)
    if key is None or key.project != project:
        raise LookupError(key_id)
    if key.revoked:
        return key
    if key.role == "admin" and keep_last_admin:
        # locked (PostgreSQL), so that two admins revoking each other at once cannot both succeed
        admins = select(ApiKey.id).where(ApiKey.project == project, ApiKey.role == "admin", ApiKey.revoked.is_(False))
        if set(session.scalars(admins.with_for_update())) <= {key.id}:
            raise PermissionError(f"key {key_id!r} is the last active admin key of project {project!r}")
    key.revoked = True
    session.flush()
    return key


def list_keys(session: Session, project: str) -> list[ApiKey]:
    """The keys of one project, newest first."""
    query = select(ApiKey).where(ApiKey.project == project).order_by(ApiKey.created_at.desc())
    return list(session.scalars(query))
