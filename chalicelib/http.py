"""The HTTP edge: Chalice requests into typed hits, ``VTSError`` into the error JSON."""

from __future__ import annotations

import base64
import functools
import ipaddress
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from chalice import Response  # type: ignore[attr-defined]

from chalicelib.errors import VTSError

logger = logging.getLogger("vts.http")

F = TypeVar("F", bound=Callable[..., Any])

# The smallest transparent 1x1 GIF (43 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(error: VTSError, headers: dict[str, str] | None = None) -> Response:
    out: dict[str, str | list[str]] = dict(headers or {})
    retry_after = getattr(error, "retry_after_s", None)
    if retry_after is not None and error.status in (429, 503):
        out["Retry-After"] = str(int(retry_after))
    return Response(
        body=error_body(error.code, error.message), status_code=error.status, headers=out
    )


def answers_errors(headers: dict[str, str] | None = None) -> Callable[[F], F]:
    """Turn our exceptions into the error JSON; anything else is a logged 500, no trace."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except VTSError as error:
                if error.status >= 500:
                    logger.warning("answering %s: %s", error.status, error.message)
                return error_response(error, headers)
            except Exception:
                logger.exception("unexpected error")
                return Response(
                    body=error_body("internal_error", "an internal error occurred"),
                    status_code=500,
                    headers=dict(headers or {}),
                )

        return cast(F, wrapper)

    return decorate


def _snake(name: str) -> str:
    name = re.sub(r"(Error|Exception)$", "", name)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "error"


def normalise_framework_error(response: Response) -> Response:
    """Chalice's own errors (404 route, 405, 415...) in our error JSON shape."""
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
        response.body = error_body(_snake(str(body["Code"])), str(body.get("Message", "")))
    return response


def source_ip(request: Any, trust_forwarded_for: bool = False) -> str | None:
    """The client IP as API Gateway saw it; never a header a client can forge. Only the
    local stack, playing API Gateway (``VTS_TRUST_FORWARDED_FOR``), takes the first
    ``X-Forwarded-For`` address instead, so tests and the demo can be many networks."""
    if trust_forwarded_for:
        forwarded = header(request, "x-forwarded-for")
        first = forwarded.split(",")[0].strip() if forwarded else ""
        try:
            return str(ipaddress.ip_address(first))
        except ValueError:
            pass  # not an address: fall back to the connection's
    identity = (request.context or {}).get("identity") or {}
    ip = identity.get("sourceIp")
    return str(ip) if ip else None


def header(request: Any, name: str) -> str | None:
    value = request.headers.get(name)
    return str(value) if value is not None else None


def web_hit(
    request: Any,
    post_id: str,
    settings: Any,
    query: bool = False,
) -> Any:
    """A ``WebHit`` from a recording request: the body (or, for the pixel, the query string)."""
    from chalicelib.auth import bearer_claims
    from chalicelib.ingest.schema import from_mapping, parse_body
    from chalicelib.ingest.web import WebHit
    from chalicelib.model import parse_post_id

    number = parse_post_id(post_id)
    if query:
        params = dict(request.query_params or {})
        body = from_mapping({k: v for k, v in params.items() if v != ""})
    else:
        body = parse_body(request.raw_body)
    return WebHit(
        post_id=number,
        request=body,
        user_agent=header(request, "user-agent"),
        referer_header=header(request, "referer"),
        source_ip=source_ip(request, settings.trust_forwarded_for),
        viewer=bearer_claims(header(request, "authorization"), settings),
        gpc=(header(request, "sec-gpc") or "").strip() == "1",
    )
