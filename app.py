"""Every trigger of VTS, each a thin adapter: parse -> one service call -> plain result."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, CORSConfig, Response  # type: ignore[attr-defined]

from chalicelib.auth import claims_from_header, require_role
from chalicelib.health import health_report
from chalicelib.http import (
    CORS_HEADERS,
    PIXEL_GIF,
    answers_errors,
    header,
    json_object,
    normalise_framework_error,
    web_hit,
)
from chalicelib.ingest.schema import parse_post_id
from chalicelib.wiring import get_services

app = Chalice(app_name="vts")
app.api.binary_types.append("image/gif")

RECORD_CORS = CORSConfig(allow_origin="*", max_age=600)
BEACON_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded"]


@app.middleware("http")
def framework_errors(event: Any, get_response: Any) -> Response:
    return normalise_framework_error(get_response(event))


def _service_claims() -> Any:
    services = get_services()
    claims = claims_from_header(header(app.current_request, "authorization"), services.settings.jwt_secret)
    return require_role(claims, ("service", "admin"))


# ---- recording ----------------------------------------------------------------------------

@app.route("/v1/posts/{post_id}/views", methods=["POST"], cors=RECORD_CORS, content_types=BEACON_TYPES)
@answers_errors(CORS_HEADERS)
def record_view(post_id: str) -> Response:
    services = get_services()
    hit = web_hit(app.current_request, post_id, services.settings.jwt_secret)
    outcome = services.web_recorder.record(hit)
    if outcome.counted:
        return Response(body={"counted": True}, status_code=201)
    return Response(body="", status_code=204)


@app.route("/v1/posts/{post_id}/pixel.gif", methods=["GET"], cors=RECORD_CORS)
def record_pixel(post_id: str) -> Response:
    headers = {"Content-Type": "image/gif", "Cache-Control": "no-store"}

    @answers_errors()
    def record() -> Response:
        services = get_services()
        hit = web_hit(app.current_request, post_id, services.settings.jwt_secret, query=True)
        outcome = services.web_recorder.record(hit)
        return Response(body="", headers={"X-VTS-Outcome": outcome.reason})

    # A no-script embed always gets its pixel; the outcome travels in a header.
    answer = record()
    if answer.status_code >= 400 and isinstance(answer.body, dict):
        headers["X-VTS-Outcome"] = answer.body["error"]["code"]
    else:
        headers.update(answer.headers)
    return Response(body=PIXEL_GIF, status_code=200, headers=headers)


# ---- registry (service token) ---------------------------------------------------------------

@app.route("/v1/posts/{post_id}", methods=["PUT"])
@answers_errors()
def register_post(post_id: str) -> Response:
    _service_claims()
    number = parse_post_id(post_id)
    body = json_object(app.current_request.raw_body)
    record, created = get_services().posts.register(number, body.get("owner_id"))
    return Response(
        body={"post_id": record.post_id, "owner_id": record.owner_id},
        status_code=201 if created else 200,
    )


@app.route("/v1/posts/{post_id}", methods=["DELETE"])
@answers_errors()
def delete_post(post_id: str) -> Response:
    _service_claims()
    get_services().posts.delete(parse_post_id(post_id))
    return Response(body="", status_code=204)


# ---- operations -----------------------------------------------------------------------------

@app.route("/v1/health", methods=["GET"], cors=True)
@answers_errors()
def health() -> Any:
    return health_report(get_services())
