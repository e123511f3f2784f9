"""The gateway's settings: ``LRC_GATEWAY_*`` environment variables, overridden by ``lrc gateway`` flags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# PS3.5 6.2: an AE title is up to 16 characters of the default repertoire, no backslash or control characters.
AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
DESTINATION = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:@]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Destination:
    """A DICOM node that receives results by C-STORE."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_destination(text: str) -> Destination:
    """``AE@HOST:PORT`` as a :class:`Destination`.

    Raises:
        ValueError: not of that form, or an invalid AE title or port.
    """
    found = DESTINATION.match(text.strip())
    if found is None:
        raise ValueError(f"a destination is AE@HOST:PORT (e.g. ORTHANC@pacs.local:4242), got {text!r}")
    ae, port = found["ae"].strip(), int(found["port"])
    if not AE_TITLE.match(ae):
        raise ValueError(f"invalid AE title {ae!r} in destination {text!r}")
    if not 0 < port < 65536:
        raise ValueError(f"port {port} of destination {text!r} is not in 1..65535")
    return Destination(ae, found["host"].strip("[]"), port)


def check_ae_title(value: str) -> str:
    """``value`` stripped, if it is an AE title.

    Raises:
        ValueError: it is not (empty, over 16 characters, a backslash or control character).
    """
    if not AE_TITLE.match(value.strip()):
        raise ValueError(f"an AE title is 1 to 16 printable characters without backslash, got {value!r}")
    return value.strip()


def check_http_url(value: str | None) -> str | None:
    """``value`` without a trailing slash if it is an http(s) URL with a host; ``None`` for none.

    Raises:
        ValueError: any other text.
    """
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an http(s) URL is needed, got {value!r}")
    return value.rstrip("/")


class GatewaySettings(BaseSettings):
    """Settings of ``lrc gateway`` (environment variables ``LRC_GATEWAY_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="LRC_GATEWAY_", extra="ignore")

    ae_title: str = Field(default="LRC", description="The gateway's own AE title.")
    host: str = Field(default="0.0.0.0", description="Address the DICOM listener binds to.")
    port: int = Field(default=11112, ge=1, le=65535, description="DICOM port.")
    allowed_callers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Calling AE titles accepted (comma-separated); empty: any."
    )
    data_dir: Path = Field(default=Path(".lrc-gateway"), description="Received instances, results and the outbox.")
    api_url: str = Field(default="http://127.0.0.1:8000", description="Base URL of the lrc service.")
    api_key: str = Field(default="", description="API key of the lrc service (submitter role).")
    model: str | None = Field(default=None, description="Model for series no rule routes; default: production.")
    destination: str | None = Field(default=None, description="Where results go by C-STORE: AE@HOST:PORT.")
    stow_url: str | None = Field(default=None, description="Where results go by STOW-RS (DICOMweb base URL).")
    rtstruct: bool = Field(default=False, description="Deliver an RTSTRUCT besides the DICOM SEG.")
    rules: Path | None = Field(default=None, description="YAML routing rules.")
    series_timeout: float = Field(default=30.0, gt=0, description="Seconds without new instances: series complete.")
    poll_interval: float = Field(default=1.0, gt=0, description="Seconds between looks at the outbox and jobs.")
    retry_base: float = Field(default=2.0, gt=0, description="First retry delay (s); doubled per failure.")
    retry_max: float = Field(default=300.0, gt=0, description="Longest retry delay (s).")
    http_timeout: float = Field(default=120.0, gt=0, description="Seconds an HTTP request to the service may take.")
    dimse_timeout: float = Field(default=60.0, gt=0, description="Seconds a DICOM association may wait.")
    keep_instances: bool = Field(default=False, description="Keep received instances after delivery.")
    deidentify: bool = Field(
        default=False, description="De-identify instances before upload; results get the original identifiers back."
    )

    @field_validator("allowed_callers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return check_ae_title(value)

    @field_validator("allowed_callers")
    @classmethod
    def _callers(cls, value: list[str]) -> list[str]:
        for title in value:
            check_ae_title(title)
        return value

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value:
            parse_destination(value)
        return value or None

    @field_validator("api_url", "stow_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @model_validator(mode="after")
    def _checked(self) -> GatewaySettings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.api_url:
            raise ValueError("LRC_GATEWAY_API_URL is needed")
        if self.destination and self.stow_url:
            raise ValueError("give either a C-STORE destination or a STOW-RS URL, not both")
        if not self.destination and not self.stow_url:
            raise ValueError("results need somewhere to go: --destination AE@HOST:PORT or --stow-url URL")
        if self.retry_max < self.retry_base:
            raise ValueError("LRC_GATEWAY_RETRY_MAX must not be shorter than LRC_GATEWAY_RETRY_BASE")
        if self.rules is not None and not self.rules.is_file():
            raise ValueError(f"rules file {self.rules} not found")
        return self

    @property
    def target(self) -> Destination | None:
        """The C-STORE destination, if results go by C-STORE."""
        return parse_destination(self.destination) if self.destination else None
