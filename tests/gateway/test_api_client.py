"""How the service's HTTP answers become retry, not-ready or permanent failures."""

from __future__ import annotations

import httpx
import pytest

from gateway.api_client import check
from gateway.errors import NotReady, Permanent, Retryable


def response(status: int, body: object = None) -> httpx.Response:
    request = httpx.Request("GET", "http://service/v1/segmentations/s1/result")
    if body is None:
        return httpx.Response(status, request=request)
    return httpx.Response(status, json=body, request=request)


@pytest.mark.parametrize(
    ("status", "not_ready", "error"),
    [
        (500, False, Retryable),
        (503, False, Retryable),
        (429, False, Retryable),
        (401, False, Retryable),
        (409, True, NotReady),
        (409, False, Permanent),
        (404, False, Permanent),
        (422, True, Permanent),
    ],
)
def test_status_to_error(status: int, not_ready: bool, error: type[Exception]):
    with pytest.raises(error) as raised:
        check(response(status, {"title": "t", "detail": "the reason"}), not_ready)
    assert type(raised.value) is error
    assert "the reason" in str(raised.value)
    assert f"HTTP {status}" in str(raised.value)


def test_success_passes():
    ok = response(200, {"id": "x"})
    assert check(ok) is ok
    with pytest.raises(Retryable, match="HTTP 502"):
        check(response(502))
