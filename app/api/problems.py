"""Every error as ``application/problem+json`` (RFC 9457), mapped in this one place."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.errors import ServiceError, Unauthenticated
from lrc.io.errors import ImageIOError, LabelGeometryMismatch, UnsafeArchive

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def problem(status: int, title: str, detail: str, kind: str, **extra: Any) -> JSONResponse:
    """A problem document response."""
    body = {"type": f"urn:lrc:problem:{kind}", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return problem(exc.status, exc.title, str(exc), _slug(type(exc).__name__))


def _image_error(request: Request, exc: Exception) -> JSONResponse:
    # Unsafe archives are refused requests (400); unreadable or mismatched images are unprocessable (422).
    status = 400 if isinstance(exc, UnsafeArchive) else 422
    title = "Label map does not fit its image" if isinstance(exc, LabelGeometryMismatch) else "Unusable image input"
    return problem(status, title, str(exc), _slug(type(exc).__name__))


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem(422, "Invalid request", detail, "validation", errors=errors)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 401:
        return problem(401, Unauthenticated.title, str(exc.detail), "unauthenticated")
    return problem(exc.status_code, str(exc.detail), str(exc.detail), f"http-{exc.status_code}")


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Internal error", f"an unexpected {type(exc).__name__}; it has been logged", "internal")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(ImageIOError, _image_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
