"""``/docs``: Swagger UI for the OpenAPI document, from files installed with the service.

The Swagger UI bundle comes from the ``fastapi-offline`` package (its copy of ``swagger-ui-dist``);
nothing is fetched from the internet, so the page works on a hospital network without one. The
page starts Swagger UI from a script file (``swagger/init.js``), not an inline script, so that
its Content-Security-Policy (:mod:`app.security_headers`) allows scripts from the service only.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from core.errors import NotFound

BUNDLE = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": BUNDLE / "swagger-ui-bundle.js",
    "swagger-ui.css": BUNDLE / "swagger-ui.css",
    "favicon.png": BUNDLE / "favicon.png",
    "init.js": Path(__file__).parent / "swagger" / "init.js",
}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
  <link rel="icon" href="{root}/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi="{root}{openapi}"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{root}/docs/assets/init.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """Swagger UI on this service's OpenAPI document."""
    root = html.escape(request.scope.get("root_path", ""))
    title = html.escape(f"{request.app.title} - API documentation")
    return HTMLResponse(PAGE.format(title=title, root=root, openapi=html.escape(request.app.openapi_url or "")))


@router.get("/docs/assets/{name}")
def asset(name: str) -> FileResponse:
    """A file of the Swagger UI page (a fixed set: nothing else of the disk)."""
    if name not in ASSETS:
        raise NotFound("documentation file", name)
    path = ASSETS[name]
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
