"""Dependencies as ``Annotated`` aliases: the context, and the caller's key checked for a role.

Every route but health and the page's static files takes one of :data:`Viewer`, :data:`Submitter` or
:data:`Admin`; the :class:`Principal` carries the key's project, which every service call is scoped to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.context import Context
from core.errors import Forbidden, Unauthenticated
from core.records.keys import find_key, role_allows

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer lrc_...`")


def get_context(request: Request) -> Context:
    """The process's context (set by :func:`app.main.create_app`)."""
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]
DEFAULT_PORTS = {"http": 80, "https": 443}


def get_public_url(request: Request, ctx: ContextDep) -> str:
    """The base of the links the API hands out: ``LRC_PUBLIC_URL``, else the request's scheme (a trusted
    proxy's ``X-Forwarded-Proto``: uvicorn's ``--forwarded-allow-ips``) and the address the connection came
    in on. Never the ``Host`` header: any client sets it, and links built from it point where it says."""
    if ctx.settings.public_url:
        return ctx.settings.public_url
    scheme = request.url.scheme
    host, port = request.scope.get("server") or ("localhost", DEFAULT_PORTS.get(scheme, 80))
    address = f"[{host}]" if ":" in host else host
    if port != DEFAULT_PORTS.get(scheme):
        address += f":{port}"
    return f"{scheme}://{address}{request.scope.get('root_path', '')}"


PublicUrl = Annotated[str, Depends(get_public_url)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key id, its role and its project."""

    key_id: str
    role: str
    project: str


def authenticate(
    ctx: ContextDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller's key (401 without a valid one)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
    with ctx.db.session() as session:
        key = find_key(session, credentials.credentials)
        if key is None:
            raise Unauthenticated("the API key is unknown or revoked")
        return Principal(key.id, key.role, key.project)


def _role(needed: str) -> object:
    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not role_allows(principal.role, needed):
            raise Forbidden(f"this needs the {needed} role; the key has {principal.role}")
        return principal

    return Depends(check)


Viewer = Annotated[Principal, _role("viewer")]
Submitter = Annotated[Principal, _role("submitter")]
Admin = Annotated[Principal, _role("admin")]
