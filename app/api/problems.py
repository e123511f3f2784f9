"""Every error as ``application/problem+json`` (RFC 9457), mapped in this one place."""

from __future__ import annotations

import errno
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from core.errors import ServiceError, Unauthenticated
from lrc.io.errors import ImageIOError, LabelGeometryMismatch, UnsafeArchive

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_S = 5
# Storage faults a client can do nothing about but wait; other OSErrors are bugs (500).
STORAGE_FULL = {errno.ENOSPC, errno.EDQUOT}
STORAGE_DOWN = {errno.EIO, errno.EROFS, errno.ESTALE, errno.ENOTCONN, errno.EHOSTDOWN}


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def problem(status: int, title: str, detail: str, kind: str, **extra: Any) -> JSONResponse:
    """A problem document response."""
    body = {"type": f"urn:lrc:problem:{kind}", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status in (503, 507):
        headers = {"Retry-After": str(RETRY_AFTER_S)}
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


def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # Only outages (connection refused or dropped, pool exhausted) are 503; other DBAPI errors are bugs.
    # The log names the error class only: SQLAlchemy's message holds the statement and its parameters.
    assert isinstance(exc, DBAPIError | PoolTimeout)
    if isinstance(exc, DataError):  # a value the column cannot hold (out of range): the request's, as a rule
        cause = type(exc.orig).__name__
        log.warning("database refused a value on %s %s (%s)", request.method, request.url.path, cause)
        detail = f"a value is out of the range the service stores ({cause})"
        return problem(422, "Invalid request", detail, "validation")
    outage = isinstance(exc, OperationalError | PoolTimeout) or getattr(exc, "connection_invalidated", False)
    if not outage:
        return _unexpected(request, exc)
    cause = type(getattr(exc, "orig", None) or exc).__name__
    log.warning("database unavailable on %s %s (%s)", request.method, request.url.path, cause)
    detail = f"the database cannot be reached ({cause}); try again in a few seconds"
    return problem(503, "Service unavailable", detail, "database-unavailable")


def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OSError)
    if exc.errno in STORAGE_FULL:
        log.error("storage full on %s %s: %s", request.method, request.url.path, errno.errorcode[exc.errno])
        detail = "the service's storage is full; nothing of this request was kept. Try again later"
        return problem(507, "Insufficient storage", detail, "storage-full")
    if exc.errno in STORAGE_DOWN:
        log.error("storage error on %s %s: %s", request.method, request.url.path, errno.errorcode[exc.errno])
        detail = "the service's storage failed; nothing of this request was kept. Try again later"
        return problem(503, "Service unavailable", detail, "storage-unavailable")
    return _unexpected(request, exc)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Called outside the ``except`` block: the traceback must be passed, or the log says "NoneType: None".
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal error", f"an unexpected {type(exc).__name__}; it has been logged", "internal")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(ImageIOError, _image_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(Exception, _unexpected)
