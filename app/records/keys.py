"""API keys: tokens are random, only their sha256 is stored, lookups compare hashes in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.records.models import ApiKey

ROLES = ("viewer", "submitter", "admin")
TOKEN_PREFIX = "lrc_"


def hash_token(token: str) -> str:
    """sha256 of a token (tokens are long random strings: no slow hash needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def role_allows(role: str, needed: str) -> bool:
    """True when ``role`` is at least ``needed`` (viewer < submitter < admin)."""
    return ROLES.index(role) >= ROLES.index(needed)


def create_key(session: Session, name: str, role: str, token: str | None = None) -> tuple[ApiKey, str]:
    """Create a key; return it and its token (the only time the token is seen)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, role=role, token_sha256=hash_token(token))
    session.add(key)
    session.flush()
    return key, token


def find_key(session: Session, token: str) -> ApiKey | None:
    """The active key whose token this is, or ``None``."""
    digest = hash_token(token)
    key = session.scalars(select(ApiKey).where(ApiKey.token_sha256 == digest)).first()
    if key is None or key.revoked or not hmac.compare_digest(key.token_sha256, digest):
        return None
    return key


def ensure_bootstrap_admin(session: Session, token: str) -> bool:
    """Create the bootstrap admin key unless a key with that token exists; True when created."""
    if session.scalars(select(ApiKey).where(ApiKey.token_sha256 == hash_token(token))).first() is not None:
        return False
    create_key(session, "bootstrap-admin", "admin", token)
    return True


def list_keys(session: Session) -> list[ApiKey]:
    """All keys, newest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))
