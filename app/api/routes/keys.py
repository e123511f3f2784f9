"""``/v1/keys``: admins create and list API keys."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import Admin, ContextDep
from app.api.schemas import KeyIn, KeyOut
from app.records import keys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(body: KeyIn, ctx: ContextDep, _: Admin) -> KeyOut:
    """A new key; its token is in this response only."""
    with ctx.db.session() as session:
        key, token = keys.create_key(session, body.name, body.role)
        return KeyOut(id=key.id, name=key.name, role=key.role, token=token)


@router.get("")
def list_keys(ctx: ContextDep, _: Admin) -> list[KeyOut]:
    """Keys (without tokens)."""
    with ctx.db.session() as session:
        return [KeyOut(id=k.id, name=k.name, role=k.role) for k in keys.list_keys(session)]
