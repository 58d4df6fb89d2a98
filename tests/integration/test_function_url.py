"""The recording routes behind the API Lambda's function URL (docs/adr/0017-function-url-door.md):
the app's own handler answers Lambda function URL events (payload format 2.0, as AWS documents
them: tests/fixtures/events/function_url_*.json) of the four recording routes, with moto
behind, and nothing else. The template side is in test_infra.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.function_url import RECORDING_ROUTES, is_url_event, route_of, to_rest_event
from tests.conftest import FIXTURES, load_event
from tests.integration.test_http_api import body_bytes, header

pytestmark = pytest.mark.integration

FIXTURE_NAMES = sorted(p.stem for p in (FIXTURES / "events").glob("function_url_*.json"))
# The top-level fields of a function URL request (AWS, "Invoking Lambda function URLs",
# request payload format), all optional but these.
REQUIRED_FIELDS = {"version", "routeKey", "rawPath", "rawQueryString", "headers",
                   "requestContext", "isBase64Encoded"}
OPTIONAL_FIELDS = {"cookies", "queryStringParameters", "body", "pathParameters", "stageVariables"}


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    """The API Lambda's entry point, as the function URL calls it."""
    from chalice.local import LambdaContext

    from app import app

    answer = app(event, LambdaContext("vts-prod-api_handler", 1024))
    assert isinstance(answer, dict)
    # A 2.0 response: no multi-value headers (Lambda would ignore them).
    assert set(answer) <= {"statusCode", "headers", "body", "isBase64Encoded", "cookies"}
    return answer


@pytest.fixture
def post(aws_env: Settings) -> int:
    from chalicelib.wiring import get_services

    get_services().posts.register(41, "artist-1")
    return 41


# ---- the events ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixtures_have_the_documented_shape(name: str) -> None:
    event = load_event(name)
    assert REQUIRED_FIELDS <= set(event) <= REQUIRED_FIELDS | OPTIONAL_FIELDS
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    http = event["requestContext"]["http"]
    assert http["path"] == event["rawPath"] and http["sourceIp"] and http["method"]
    assert is_url_event(event)


def test_every_recording_route_has_a_fixture() -> None:
    covered = set()
    for name in FIXTURE_NAMES:
        event = load_event(name)
        found = route_of(event["requestContext"]["http"]["method"], event["rawPath"])
        if not isinstance(found, int):
            covered.add((event["requestContext"]["http"]["method"], found[0]))
    assert covered == set(RECORDING_ROUTES)


def test_other_events_are_not_taken_for_function_url_ones() -> None:
    for name in ("http_api_record_view", "iot_player_view", "dynamodb_stream_batch"):
        assert not is_url_event(load_event(name)), name


def test_the_translation_keeps_what_chalice_reads() -> None:
    rest = to_rest_event(load_event("function_url_pixel"))
    assert isinstance(rest, dict)
    assert rest["requestContext"]["resourcePath"] == "/v1/posts/{post_id}/pixel.gif"
    assert rest["requestContext"]["httpMethod"] == "GET"
    assert rest["pathParameters"] == {"post_id": "41"}
    assert rest["multiValueQueryStringParameters"] == {"source": ["widget"], "utm": ["a", "b"]}
    assert rest["requestContext"]["identity"]["sourceIp"] == "203.0.113.7"
    rest = to_rest_event(load_event("function_url_record_view"))
    assert isinstance(rest, dict)
    assert rest["headers"]["cookie"] == "_ga=GA1.1.123.456"  # 2.0 moves cookies out


# ---- the handler answers them ----------------------------------------------------------------

def test_a_view_is_recorded_once_from_a_function_url_event(aws_env: Settings, post: int) -> None:
    from chalicelib.wiring import dynamodb_client

    event = load_event("function_url_record_view")
    answer = invoke(event)
    assert answer["statusCode"] == 201, answer
    assert json.loads(answer["body"]) == {"counted": True}
    # CORS is the URL's own configuration (Lambda adds it): the app's is left out.
    assert header(answer, "Access-Control-Allow-Origin") is None
    assert invoke(event)["statusCode"] == 204  # same Visitor, same Day
    items = dynamodb_client(aws_env).scan(TableName=aws_env.events_table)["Items"]
    assert len(items) == 1
    assert items[0]["post"]["N"] == str(post) and items[0]["src"]["S"] == "widget"


def test_a_base64_body_is_read(aws_env: Settings, post: int) -> None:
    answer = invoke(load_event("function_url_record_view_base64"))
    assert answer["statusCode"] == 201, answer


def test_the_pixel_is_a_gif_from_a_function_url_event(aws_env: Settings, post: int) -> None:
    from chalicelib.http import PIXEL_GIF

    answer = invoke(load_event("function_url_pixel"))
    assert answer["statusCode"] == 200, answer
    assert answer["isBase64Encoded"] is True
    assert body_bytes(answer) == PIXEL_GIF
    assert header(answer, "Content-Type") == "image/gif"
    assert header(answer, "X-VTS-Outcome") == "counted"


def test_the_counter_and_the_script_are_served(aws_env: Settings, post: int) -> None:
    answer = invoke(load_event("function_url_counter"))
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"post_id": post, "views": 0}
    answer = invoke(load_event("function_url_tracker_script"))
    assert answer["statusCode"] == 200, answer
    assert header(answer, "Content-Type").startswith("application/javascript")


def test_only_the_recording_routes_are_served(aws_env: Settings, post: int) -> None:
    answer = invoke(load_event("function_url_stats_not_served"))
    assert answer["statusCode"] == 404, answer
    assert json.loads(answer["body"])["error"]["code"] == "not_found"
    event = load_event("function_url_counter")
    event["requestContext"]["http"]["method"] = "DELETE"
    answer = invoke(event)
    assert answer["statusCode"] == 405, answer
    assert json.loads(answer["body"])["error"]["code"] == "method_not_allowed"
    event = load_event("function_url_counter")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/posts/41/counter/extra"
    assert invoke(event)["statusCode"] == 404


def test_bad_requests_are_answered_4xx_not_5xx(aws_env: Settings, post: int) -> None:
    answer = invoke(load_event("function_url_record_view_bad_post"))
    assert answer["statusCode"] == 400, answer
    assert json.loads(answer["body"])["error"]["code"]
    event = load_event("function_url_record_view")
    event["body"] = "{not json"
    assert invoke(event)["statusCode"] == 400
    event = load_event("function_url_record_view")
    event["headers"]["content-type"] = "application/xml"
    answer = invoke(event)
    assert answer["statusCode"] == 415, answer
    event = load_event("function_url_record_view")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/posts/%E2%9C%93/views"
    assert invoke(event)["statusCode"] == 400  # decoded, then refused as a post id
