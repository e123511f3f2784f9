"""Security headers on the page, the API and the docs; ``/docs`` runs from the service's own files."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.service.harness import Service

COMMON = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def directives(policy: str) -> dict[str, set[str]]:
    """A Content-Security-Policy as {directive: sources}."""
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = set(sources)
    return parsed


class _Links(HTMLParser):
    """Every URL a page loads: ``src`` and ``href`` attributes, and inline scripts (counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v for k, v in found.items() if k in ("src", "href") and v]
        if tag == "script" and "src" not in found:
            self.inline_scripts += 1


@pytest.mark.parametrize(
    ("path", "role", "kind"),
    [
        ("/ui/", "none", "page"),
        ("/ui/js/app.js", "none", "page"),
        ("/docs", "none", "docs"),
        ("/docs/assets/swagger-ui-bundle.js", "none", "docs"),
        ("/v1/studies", "viewer", "api"),
        ("/v1/studies", "none", "api"),  # a 401 problem too
        ("/dicomweb/studies", "viewer", "api"),
        ("/openapi.json", "none", "api"),
        ("/healthz", "none", "api"),
    ],
)
def test_every_response_carries_the_security_headers(service: Service, path: str, role: str, kind: str):
    with service.client(role) as client:
        response = client.get(path)
    assert response.status_code in (200, 401), response.text
    assert {k: response.headers.get(k) for k in COMMON} == COMMON
    policy = directives(response.headers["content-security-policy"])
    assert policy["frame-ancestors"] == {"'none'"}
    assert policy["default-src"] == {"'none'"}
    assert policy["base-uri"] == {"'none'"}
    if kind == "api":  # nothing may load from an API answer
        assert not {"script-src", "style-src", "connect-src", "img-src"} & set(policy)
    else:  # the service's own files only: no inline code, no other origin
        assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == {"'self'"}
        assert policy["img-src"] == ({"'self'", "data:"} if kind == "docs" else {"'self'"})


def test_docs_load_from_the_service_alone(service: Service):
    with service.client("none") as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        links = _Links()
        links.feed(page.text)
        assert links.inline_scripts == 0  # the policy would block one
        assert len(links.urls) == 4, links.urls  # stylesheet, icon, Swagger UI, its start script
        assert not [u for u in links.urls if not u.startswith("/")], links.urls  # no CDN, no other host
        types = {}
        for url in links.urls:
            asset = client.get(url)
            assert asset.status_code == 200, (url, asset.text[:200])
            types[url.rsplit("/", 1)[1]] = asset.headers["content-type"].split(";")[0]
        bundle = client.get("/docs/assets/swagger-ui-bundle.js").text
        assert "SwaggerUIBundle" in bundle
        assert len(bundle) > 500_000  # the real bundle, not a placeholder
        start = client.get("/docs/assets/init.js").text
        assert re.search(r"\bSwaggerUIBundle\(", start)
        # The start script reads the document's URL from the page: it must be the one the service serves.
        openapi = re.search(r'data-openapi="([^"]+)"', page.text)
        assert openapi is not None
        assert client.get(openapi[1]).json()["info"]["title"] == "LRC segmentation service"
        assert client.get("/docs/assets/..%2Fdocs.py").status_code == 404
        assert client.get("/docs/assets/swagger-ui.js.map").status_code == 404
        assert client.get("/redoc").status_code == 404  # ReDoc needs a CDN and inline styles: not served
    assert types == {
        "swagger-ui.css": "text/css",
        "favicon.png": "image/png",
        "swagger-ui-bundle.js": "text/javascript",
        "init.js": "text/javascript",
    }
