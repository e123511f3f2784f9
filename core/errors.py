"""Typed domain errors of the service. :mod:`app.api.problems` maps them to problem+json.

Each carries an HTTP status and a message a user can act on. Errors of the image I/O layer
(:class:`lrc.io.ImageIOError`) are mapped there too.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: ``status`` and ``title`` go into the problem document, the message into ``detail``."""

    status = 400
    title = "Bad request"


class NotFound(ServiceError):
    """No such record (or it is not visible to the caller)."""

    status = 404
    title = "Not found"

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"no {what} with id {ident!r}")
        self.what = what


class Unauthenticated(ServiceError):
    """No valid API key."""

    status = 401
    title = "Unauthenticated"


class Forbidden(ServiceError):
    """The key's role does not allow this."""

    status = 403
    title = "Forbidden"


class UnsupportedMediaType(ServiceError):
    """The request body has the wrong content type."""

    status = 415
    title = "Unsupported media type"


class UploadTooLarge(ServiceError):
    """The request body exceeds ``LRC_MAX_UPLOAD_BYTES``."""

    status = 413
    title = "Upload too large"


class InvalidRequest(ServiceError):
    """The request is well-formed but cannot be carried out as asked."""

    status = 422
    title = "Invalid request"


class Conflict(ServiceError):
    """The record is not in a state that allows this (yet)."""

    status = 409
    title = "Conflict"


class ResultNotReady(Conflict):
    """The job producing the result has not succeeded (yet)."""

    title = "Result not ready"


class IdempotencyKeyReused(Conflict):
    """An ``Idempotency-Key`` already answered another request (another body) in the project."""

    title = "Idempotency key reused"


class PromotionRefused(Conflict):
    """The promotion gate refused a model version."""

    title = "Promotion refused"


class Unavailable(ServiceError):
    """A dependency (database, broker, storage) cannot be reached."""

    status = 503
    title = "Service unavailable"


class InvalidQuery(ServiceError):
    """A search's query parameters cannot be used (a bad ``limit``, a wildcard where none is allowed)."""

    status = 400
    title = "Invalid query"


class NotAcceptable(ServiceError):
    """None of the media types in ``Accept`` can be produced."""

    status = 406
    title = "Not acceptable"
