"""Security headers on every response: a Content-Security-Policy per kind of path, no MIME sniffing,
no framing, no referrer.

- The page (``/`` and ``/ui/...``): scripts, styles and requests from the service only (its JavaScript
  modules call the API; it holds no inline script or style attribute).
- ``/docs``: the same for Swagger UI (:mod:`app.web.docs`), plus ``data:`` images (its icons live in
  its stylesheet as ``data:`` URLs).
- Everything else (the JSON API, DICOMweb, downloads): nothing may load from a response at all.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_NO_FRAMES = "base-uri 'none'; frame-ancestors 'none'; object-src 'none'"
PAGE_POLICY = (
    f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    f"form-action 'self'; {_NO_FRAMES}"
)
DOCS_POLICY = (
    f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    f"form-action 'none'; {_NO_FRAMES}"
)
API_POLICY = f"default-src 'none'; form-action 'none'; {_NO_FRAMES}"
COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def policy_for(path: str) -> str:
    """The Content-Security-Policy of responses to ``path``."""
    if path == "/" or path == "/ui" or path.startswith("/ui/"):
        return PAGE_POLICY
    if path == "/docs" or path.startswith("/docs/"):
        return DOCS_POLICY
    return API_POLICY


class SecurityHeadersMiddleware:
    """Adds :data:`COMMON` and the path's Content-Security-Policy to each HTTP response (a header a route
    set itself is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = policy_for(scope["path"])

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {**COMMON, "Content-Security-Policy": policy}.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, sending)
