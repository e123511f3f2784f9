"""``/v1/keys``: admins create, list and revoke the API keys of their own project."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import Admin, ContextDep
from app.api.schemas import KeyIn, KeyOut
from app.services import keys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(body: KeyIn, ctx: ContextDep, caller: Admin) -> KeyOut:
    """A new key of the caller's project; its token is in this response only."""
    key, token = keys.create(ctx, body.name, body.role, caller.project)
    return KeyOut(id=key.id, name=key.name, role=key.role, project=key.project, revoked=key.revoked, token=token)


@router.get("")
def list_keys(ctx: ContextDep, caller: Admin) -> list[KeyOut]:
    """The keys of the caller's project (without tokens), revoked ones included."""
    return [
        KeyOut(id=k.id, name=k.name, role=k.role, project=k.project, revoked=k.revoked)
        for k in keys.find(ctx, caller.project)
    ]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: str, ctx: ContextDep, caller: Admin) -> None:
    """Revoke a key of the caller's project: its token is refused from the next request on. The key
    stays listed as revoked. The project's last active admin key cannot be revoked (409)."""
    keys.revoke(ctx, key_id, caller.project)
