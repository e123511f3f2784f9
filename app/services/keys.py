"""API keys as admins manage them: always within the admin's own project."""

from __future__ import annotations

from app.context import Context
from app.records import keys as records
from app.records.models import ApiKey


def create(ctx: Context, name: str, role: str, project: str) -> tuple[ApiKey, str]:
    """A new key of ``project`` and its token (shown only now)."""
    with ctx.db.session() as session:
        return records.create_key(session, name, role, project)


def find(ctx: Context, project: str) -> list[ApiKey]:
    """The keys of ``project``, newest first."""
    with ctx.db.session() as session:
        return records.list_keys(session, project)
