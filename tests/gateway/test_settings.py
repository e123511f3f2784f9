"""Gateway settings: flags and ``LRC_GATEWAY_*`` variables, checked with messages that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Destination, GatewaySettings, parse_destination


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ORTHANC@127.0.0.1:4242", Destination("ORTHANC", "127.0.0.1", 4242)),
        ("PACS 1@pacs.example.org:104", Destination("PACS 1", "pacs.example.org", 104)),
        ("A@[::1]:11112", Destination("A", "::1", 11112)),
    ],
)
def test_destination(text: str, expected: Destination):
    assert parse_destination(text) == expected
    assert str(expected).startswith(expected.ae_title + "@")


@pytest.mark.parametrize(
    "text", ["ORTHANC", "@host:104", "ORTHANC@host", "A@host:0", "A@host:70000", "SEVENTEEN_CHARS_X@h:1", "A\\B@h:1"]
)
def test_bad_destination(text: str):
    with pytest.raises(ValueError, match="destination|AE title|port"):
        parse_destination(text)


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("LRC_GATEWAY_ALLOWED_CALLERS", "ORTHANC, PACS2")
    monkeypatch.setenv("LRC_GATEWAY_DESTINATION", "ORTHANC@127.0.0.1:4242")
    monkeypatch.setenv("LRC_GATEWAY_SERIES_TIMEOUT", "2.5")
    monkeypatch.setenv("LRC_GATEWAY_API_URL", "http://service:8000/")
    monkeypatch.setenv("LRC_GATEWAY_DEIDENTIFY", "true")
    settings = GatewaySettings(data_dir=tmp_path)
    assert settings.deidentify
    assert settings.allowed_callers == ["ORTHANC", "PACS2"]
    assert settings.target == Destination("ORTHANC", "127.0.0.1", 4242)
    assert settings.series_timeout == 2.5
    assert settings.api_url == "http://service:8000"
    assert GatewaySettings(data_dir=tmp_path, series_timeout=9).series_timeout == 9  # a flag wins


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "results need somewhere to go"),
        ({"destination": "A@h:1", "stow_url": "http://x/dicom-web"}, "not both"),
        ({"destination": "nonsense"}, "AE@HOST:PORT"),
        ({"destination": "A@h:1", "ae_title": "X" * 17}, "AE title"),
        ({"destination": "A@h:1", "allowed_callers": "OK,BAD\\AE"}, "AE title"),
        ({"stow_url": "ftp://x"}, "http"),
        ({"destination": "A@h:1", "series_timeout": 0}, "greater than 0"),
        ({"destination": "A@h:1", "rules": "/no/such/rules.yaml"}, "rules file"),
        ({"destination": "A@h:1", "retry_base": 10, "retry_max": 5}, "RETRY_MAX"),
    ],
)
def test_invalid_settings(given: dict[str, object], message: str, tmp_path: Path):
    with pytest.raises(ValidationError, match=message):
        GatewaySettings(data_dir=tmp_path, **given)
