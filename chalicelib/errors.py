"""One exception hierarchy. HTTP answers are chosen by class, never by message text."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class VTSError(Exception):
    """Base of every error VTS raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(VTSError):
    """The deployment or local environment is misconfigured."""

    code = "config_error"


class BadRequest(VTSError):
    status = 400
    code = "bad_request"


class Unauthorized(VTSError):
    status = 401
    code = "unauthorized"


class Forbidden(VTSError):
    status = 403
    code = "forbidden"


class NotFound(VTSError):
    status = 404
    code = "not_found"


class PayloadTooLarge(VTSError):
    status = 413
    code = "payload_too_large"


class RateLimited(VTSError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageUnavailable(VTSError):
    """DynamoDB could not be reached or throttled us: retry later, nothing was half-written."""

    status = 503
    code = "storage_unavailable"
    retry_after_s = 5


class StorageThrottled(StorageUnavailable):
    """DynamoDB refused the request for throughput, e.g. one partition key written past its
    limit: nothing was written, and the same write under another key may pass (the
    recorders' write-shard fallback, chalicelib/views.py)."""


def describe(error: ValidationError) -> str:
    """One readable line per problem: ``field: message``."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)
