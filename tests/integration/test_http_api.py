"""The recording routes behind the HTTP API front door (docs/adr/0014-http-api-front-door.md):
the Chalice app answers API Gateway HTTP API events of payload format 1.0, as AWS documents
them (tests/fixtures/events/http_api_*.json), through its own Lambda handler, with moto
behind. The template side is in test_infra.py."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.function_url import RECORDING_ROUTES
from tests.conftest import FIXTURES, load_event

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import build_template  # noqa: E402

FIXTURE_NAMES = sorted(p.stem for p in (FIXTURES / "events").glob("http_api_*.json"))
# The top-level fields of a payload format 1.0 event (AWS, "Create AWS Lambda proxy
# integrations for HTTP APIs"): the REST API's proxy event plus "version".
FORMAT_1_FIELDS = {
    "version", "resource", "path", "httpMethod", "headers", "multiValueHeaders",
    "queryStringParameters", "multiValueQueryStringParameters", "requestContext",
    "pathParameters", "stageVariables", "body", "isBase64Encoded",
}


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    """The API Lambda's entry point, as the HTTP API's integration calls it."""
    from chalice.local import LambdaContext

    from app import app

    answer = app(event, LambdaContext("vts-prod-api_handler", 1024))
    assert isinstance(answer, dict)
    return answer


def header(answer: dict[str, Any], name: str) -> Any:
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    return headers.get(name.lower())


def body_bytes(answer: dict[str, Any]) -> bytes:
    body = answer["body"]
    return base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()


@pytest.fixture
def post(aws_env: Settings) -> int:
    from chalicelib.wiring import get_services

    get_services().posts.register(41, "artist-1")
    return 41


# ---- the events ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixtures_have_the_documented_shape_and_a_route_of_the_http_api(name: str) -> None:
    event = load_event(name)
    assert set(event) == FORMAT_1_FIELDS
    assert event["version"] == build_template.HTTP_API_PAYLOAD_FORMAT == "1.0"
    context = event["requestContext"]
    # What Chalice routes by: the route's path (not the request's) and the method.
    route = (context["httpMethod"], context["resourcePath"])
    assert route in RECORDING_ROUTES
    assert event["resource"] == context["resourcePath"]
    assert context["resourceId"] == " ".join(route)  # the route key
    assert context["stage"] == "$default" and event["path"] == context["path"]
    assert context["identity"]["sourceIp"]
    assert set(event["pathParameters"] or {}) == set(
        part[1:-1] for part in context["resourcePath"].split("/") if part.startswith("{"))
    for single, multi in (("headers", "multiValueHeaders"),
                          ("queryStringParameters", "multiValueQueryStringParameters")):
        assert {k: [v] for k, v in (event[single] or {}).items()} == (event[multi] or {})


def test_every_http_api_route_has_a_fixture() -> None:
    covered = {(load_event(n)["httpMethod"], load_event(n)["resource"]) for n in FIXTURE_NAMES}
    assert covered == set(RECORDING_ROUTES)


# ---- the handler answers them ----------------------------------------------------------------

def test_a_view_is_recorded_once_from_an_http_api_event(aws_env: Settings, post: int) -> None:
    from chalicelib.wiring import dynamodb_client

    event = load_event("http_api_record_view")
    answer = invoke(event)
    assert answer["statusCode"] == 201, answer
    assert json.loads(answer["body"]) == {"counted": True}
    assert header(answer, "Access-Control-Allow-Origin") == "*"
    assert invoke(event)["statusCode"] == 204  # same Visitor, same Day
    items = dynamodb_client(aws_env).scan(TableName=aws_env.events_table)["Items"]
    assert len(items) == 1
    assert items[0]["post"]["N"] == str(post) and items[0]["src"]["S"] == "widget"


def test_the_pixel_is_a_gif_from_an_http_api_event(aws_env: Settings, post: int) -> None:
    from chalicelib.http import PIXEL_GIF

    answer = invoke(load_event("http_api_pixel"))
    assert answer["statusCode"] == 200, answer
    # Binary bodies go base64 with isBase64Encoded, which format 1.0 responses honour.
    assert answer["isBase64Encoded"] is True
    assert body_bytes(answer) == PIXEL_GIF and body_bytes(answer).startswith(b"GIF")
    assert header(answer, "Content-Type") == "image/gif"
    assert header(answer, "Cache-Control") == "no-store"
    assert header(answer, "X-VTS-Outcome") == "counted"


def test_the_counter_is_read_from_an_http_api_event(aws_env: Settings, post: int) -> None:
    answer = invoke(load_event("http_api_counter"))
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"post_id": post, "views": 0}
    assert header(answer, "Cache-Control") == "public, max-age=60"
    assert header(answer, "Access-Control-Allow-Origin") == "*"


def test_vts_js_is_served_from_an_http_api_event(aws_env: Settings) -> None:
    answer = invoke(load_event("http_api_tracker_script"))
    assert answer["statusCode"] == 200, answer
    assert header(answer, "Content-Type").startswith("application/javascript")
    assert header(answer, "ETag")
    from chalicelib.web import assets

    script = body_bytes(answer).decode()
    assert script == assets.tracker_script().body
    # It takes its API base from its own src (what precedes /v1/vts.js): loaded from the
    # HTTP API, it records there (tests/e2e/test_tracker.py runs it in a browser).
    assert '"/v1/vts.js"' in script and "/v1/posts/" in script


def test_a_bad_request_is_answered_4xx_not_5xx(aws_env: Settings, post: int) -> None:
    answer = invoke(load_event("http_api_record_view_bad_post"))
    assert answer["statusCode"] == 400, answer
    assert json.loads(answer["body"])["error"]["code"]
    assert header(answer, "Access-Control-Allow-Origin") == "*"

    event = load_event("http_api_record_view")
    event["body"] = "{not json"
    assert invoke(event)["statusCode"] == 400

    event = load_event("http_api_record_view")  # a type the beacon never sends
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers["content-type"] = "application/xml" if headers is event["headers"] else [
            "application/xml"]
    answer = invoke(event)
    assert answer["statusCode"] == 415, answer
    assert json.loads(answer["body"])["error"]["code"] == "unsupported_media_type"

    event = load_event("http_api_counter")
    event["pathParameters"] = {"post_id": "404"}
    event["path"] = event["requestContext"]["path"] = "/v1/posts/404/counter"
    answer = invoke(event)
    assert answer["statusCode"] == 404, answer
    assert header(answer, "Cache-Control") == "no-store"
