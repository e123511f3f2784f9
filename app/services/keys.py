"""API keys as admins manage them: always within the admin's own project."""

from __future__ import annotations

from core.context import Context
from core.errors import Conflict, NotFound
from core.records import keys as records
from core.records.tables import ApiKey


def create(ctx: Context, name: str, role: str, project: str) -> tuple[ApiKey, str]:
    """A new key of ``project`` and its token (shown only now)."""
    with ctx.db.session() as session:
        return records.create_key(session, name, role, project)


def find(ctx: Context, project: str) -> list[ApiKey]:
    """The keys of ``project``, newest first."""
    with ctx.db.session() as session:
        return records.list_keys(session, project)


def revoke(ctx: Context, key_id: str, project: str) -> ApiKey:
    """Revoke a key of ``project`` (404 when it has none such; 409 for its last active admin key)."""
    with ctx.db.session() as session:
        try:
            return records.revoke_key(session, key_id, project)
        except LookupError as exc:
            raise NotFound("API key", key_id) from exc
        except PermissionError as exc:
            raise Conflict(f"{exc}: create another admin key first") from exc
