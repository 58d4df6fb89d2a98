"""The recording routes behind a Lambda function URL (docs/adr/0017-function-url-door.md).

A function URL has no API Gateway charge: a request costs only the Lambda invocation, which
makes it the cheapest door for the recording routes (bench/bench_price.py). It calls the
function with the HTTP API's payload format **2.0** (``rawPath``, ``rawQueryString``,
``requestContext.http``, ``cookies``), which Chalice does not read: Chalice routes the REST
API's proxy event by ``requestContext.resourcePath`` (the route's path with ``{params}``).

``to_rest_event`` translates a 2.0 event of one of ``RECORDING_ROUTES`` into that REST
event; any other path or method gets ``not_routed`` (the JSON 404/405 of the app's errors)
without running the app, so the URL serves the recording routes only, as the HTTP API door
does. ``to_url_response`` folds Chalice's answer into the 2.0 response: one ``headers`` map
(no ``multiValueHeaders`` there) and no CORS headers of the app's own, which the URL's
``Cors`` configuration sets (and answers preflights with) instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from chalice import Chalice  # type: ignore[attr-defined]

# The routes every recording door serves: the HTTP API's and the function URL's
# (scripts/build_template.py checks each against app.py).
RECORDING_ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", "/v1/posts/{post_id}/views"),
    ("GET", "/v1/posts/{post_id}/pixel.gif"),
    ("GET", "/v1/vts.js"),
    ("GET", "/v1/posts/{post_id}/counter"),
)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template)
    regex = "".join(
        f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(regex + r"\Z")


_ROUTES = tuple((method, template, _pattern(template)) for method, template in RECORDING_ROUTES)


def is_url_event(event: Any) -> bool:
    """A function URL's (payload format 2.0) event, as opposed to the REST API's or the HTTP
    API's format 1.0 ones and the app's other triggers."""
    return (
        isinstance(event, dict)
        and event.get("version") == "2.0"
        and isinstance(event.get("requestContext"), dict)
        and isinstance(event["requestContext"].get("http"), dict)
    )


def route_of(method: str, path: str) -> tuple[str, dict[str, str]] | int:
    """The recording route of ``method`` and ``path``: its template and path parameters, or
    the status that refuses it (405: the path is a route's, not with this method; 404)."""
    status = 404
    for route_method, template, pattern in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        if route_method == method:
            return template, {name: unquote(value) for name, value in match.groupdict().items()}
        status = 405
    return status


def _query(raw: str) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    pairs = parse_qsl(raw, keep_blank_values=True)
    if not pairs:
        return None, None
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def to_rest_event(event: Mapping[str, Any]) -> dict[str, Any] | int:
    """The REST API proxy event Chalice reads, for a 2.0 event of a recording route; for any
    other request, the status to answer with ``not_routed`` (404 or 405)."""
    context = event["requestContext"]
    http = context["http"]
    method = str(http.get("method", "")).upper()
    path = str(event.get("rawPath") or http.get("path") or "/")
    found = route_of(method, path)
    if isinstance(found, int):
        return found
    template, parameters = found
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    cookies = event.get("cookies") or []
    if cookies:
        headers["cookie"] = "; ".join(str(c) for c in cookies)
    single, multi = _query(str(event.get("rawQueryString") or ""))
    return {
        "resource": template,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": single,
        "multiValueQueryStringParameters": multi,
        "pathParameters": parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": template,
            "httpMethod": method,
            "path": path,
            "stage": "$default",
            "requestId": context.get("requestId"),
            "domainName": context.get("domainName"),
            "apiId": context.get("apiId"),
            "accountId": context.get("accountId"),
            "identity": {
                "sourceIp": http.get("sourceIp"),
                "userAgent": http.get("userAgent"),
            },
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def not_routed(status: int) -> dict[str, Any]:
    """The app's JSON error for a path (404) or method (405) the URL does not serve."""
    code, message = (
        ("not_found", "this host serves the recording routes only")
        if status == 404
        else ("method_not_allowed", "this route does not take that method")
    )
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps({"error": {"code": code, "message": message}}),
        "isBase64Encoded": False,
    }


def to_url_response(answer: Mapping[str, Any]) -> dict[str, Any]:
    """Chalice's (REST) answer as a 2.0 response: multi-value headers joined into
    ``headers``, the app's own CORS headers left to the URL's ``Cors`` configuration."""
    headers: dict[str, str] = {}
    for name, value in (answer.get("headers") or {}).items():
        headers[str(name)] = str(value)
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ", ".join(str(v) for v in values)
    headers = {k: v for k, v in headers.items() if not k.lower().startswith("access-control-")}
    return {
        "statusCode": answer.get("statusCode", 200),
        "headers": headers,
        "body": answer.get("body", ""),
        "isBase64Encoded": bool(answer.get("isBase64Encoded")),
    }


class UrlAwareChalice(Chalice):
    """The Chalice app, also answering a function URL's events of the recording routes; every
    other event (REST, HTTP API 1.0, stream, schedule, IoT) goes to Chalice as it is."""

    def __call__(self, event: Any, context: Any) -> Any:
        if not is_url_event(event):
            return super().__call__(event, context)
        rest = to_rest_event(event)
        if isinstance(rest, int):
            return not_routed(rest)
        return to_url_response(super().__call__(rest, context))
