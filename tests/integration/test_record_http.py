"""Recording through the Chalice app over HTTP semantics, backed by moto in server mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.config import Settings
from tests.conftest import BROWSER_UA, auth

pytestmark = pytest.mark.integration

MOBILE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)


def register(api: Any, settings: Settings, post_id: int = 1, owner: str = "artist-1") -> Any:
    return api.http.put(
        f"/v1/posts/{post_id}",
        headers={**auth(settings, "platform", "service"), "Content-Type": "application/json"},
        body=json.dumps({"owner_id": owner}),
    )


def record(
    api: Any,
    post_id: Any = 1,
    body: str | bytes = "",
    ua: str = BROWSER_UA,
    content_type: str = "text/plain;charset=UTF-8",
    **headers: str,
) -> Any:
    return api.http.post(
        f"/v1/posts/{post_id}/views",
        headers={"User-Agent": ua, "Content-Type": content_type, **headers},
        body=body,
    )


def error_code(response: Any) -> str:
    return str(json.loads(response.body)["error"]["code"])


def events(settings: Settings) -> list[dict[str, Any]]:
    from chalicelib.wiring import dynamodb_client

    client = dynamodb_client(settings)
    return list(client.scan(TableName=settings.events_table)["Items"])


def test_register_then_record_once_per_visitor_and_day(api: Any, aws_env: Settings) -> None:
    assert register(api, aws_env).status_code == 201
    assert register(api, aws_env).status_code == 200
    first = record(api)
    assert first.status_code == 201 and json.loads(first.body) == {"counted": True}
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert record(api).status_code == 204
    assert record(api, ua=MOBILE_UA).status_code == 201
    items = events(aws_env)
    assert len(items) == 2
    assert {i["dev"]["S"] for i in items} == {"desktop", "mobile"}


def test_json_and_text_plain_bodies_are_both_read(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    body = json.dumps({"source": "widget", "channel": "promoted"})
    assert record(api, body=body, content_type="application/json").status_code == 201
    assert record(api, body=body, ua=MOBILE_UA).status_code == 201
    assert {i["src"]["S"] for i in events(aws_env)} == {"widget"}


def test_a_bot_is_accepted_but_not_stored(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    assert (
        record(
            api, ua="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        ).status_code
        == 204
    )
    assert record(api, ua="curl/8.5.0").status_code == 204
    assert events(aws_env) == []
    health = json.loads(api.http.get("/v1/health", headers=auth(aws_env, "ops", "service")).body)
    assert health["drops"]["today"]["bot"] == 2


def test_unknown_post_and_bad_ids(api: Any, aws_env: Settings) -> None:
    response = record(api, post_id=404)
    assert response.status_code == 404 and error_code(response) == "unknown_post"
    assert error_code(record(api, post_id="abc")) == "invalid_post_id"


def test_bad_bodies_answer_400_and_big_ones_413(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    assert record(api, body="{nope").status_code == 400
    response = record(api, body=json.dumps({"intent": "glance"}))
    assert response.status_code == 400 and error_code(response) == "invalid_field"
    big = json.dumps({"channel_context": "x" * 3000})
    response = record(api, body=big)
    assert response.status_code == 413 and error_code(response) == "payload_too_large"
    assert events(aws_env) == []


def test_impressions_are_rate_limited_with_retry_after(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    body = json.dumps({"intent": "impression"})
    assert record(api, body=body).status_code == 204
    limited = record(api, body=body)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert error_code(limited) == "rate_limited"
    assert len(events(aws_env)) == 1


def test_the_author_does_not_count(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    response = record(api, Authorization=auth(aws_env, "artist-1", "artist")["Authorization"])
    assert response.status_code == 204
    assert events(aws_env) == []


def test_a_bad_token_is_401_not_a_silent_anonymous_view(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    response = record(api, Authorization="Bearer nonsense")
    assert response.status_code == 401 and error_code(response) == "invalid_token"


def test_registry_needs_a_service_token(api: Any, aws_env: Settings) -> None:
    body = json.dumps({"owner_id": "a"})
    assert api.http.put("/v1/posts/1", body=body).status_code == 401
    headers = {**auth(aws_env, "a", "artist"), "Content-Type": "application/json"}
    assert api.http.put("/v1/posts/1", headers=headers, body=body).status_code == 403
    service = {**auth(aws_env, "platform", "service"), "Content-Type": "application/json"}
    response = api.http.put("/v1/posts/1", headers=service, body=json.dumps({"owner_id": ""}))
    assert response.status_code == 400 and error_code(response) == "invalid_owner_id"
    assert api.http.delete("/v1/posts/1", headers=service).status_code == 404
    assert api.http.put("/v1/posts/1", headers=service, body=body).status_code == 201
    assert api.http.delete("/v1/posts/1", headers=service).status_code == 204


def test_the_pixel_always_answers_a_gif(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    headers = {"User-Agent": BROWSER_UA, "Accept": "image/gif,*/*"}
    for path in (
        "/v1/posts/1/pixel.gif?source=widget",
        "/v1/posts/1/pixel.gif",
        "/v1/posts/999/pixel.gif",
        "/v1/posts/1/pixel.gif?intent=bogus",
    ):
        response = api.http.get(path, headers=headers)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/gif"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.body.startswith(b"GIF89a")
    [item] = events(aws_env)
    assert item["src"]["S"] == "widget"


def test_unsupported_content_type_uses_the_error_json(api: Any, aws_env: Settings) -> None:
    response = record(api, content_type="application/xml", body="<a/>")
    assert response.status_code == 415
    assert "error" in json.loads(response.body)


def test_health_answers(api: Any, aws_env: Settings) -> None:
    response = api.http.get("/v1/health")
    assert response.status_code == 200
    assert json.loads(response.body)["status"] == "ok"


class WriteCounter:
    """Counts the DynamoDB write requests the app's own boto3 client sends, by table."""

    WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}

    def __init__(self) -> None:
        self.by_table: dict[str, int] = {}

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in self.WRITES:
            table = str(params.get("TableName"))
            self.by_table[table] = self.by_table.get(table, 0) + 1

    def take(self, table: str) -> int:
        return self.by_table.pop(table, 0)


def count_writes(settings: Settings) -> WriteCounter:
    from chalicelib.wiring import get_services

    counter = WriteCounter()
    get_services().client.meta.events.register("before-parameter-build.dynamodb", counter)
    return counter


def test_a_container_never_writes_a_known_view_or_slot_twice(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    counter = count_writes(aws_env)
    assert record(api).status_code == 201
    assert counter.take(aws_env.events_table) == 1
    for _ in range(3):  # the same Visitor again today: answered from what the store confirmed
        assert record(api).status_code == 204
    assert counter.take(aws_env.events_table) == 0
    body = json.dumps({"intent": "impression"})
    assert record(api, body=body, ua=MOBILE_UA).status_code == 204
    assert (counter.take(aws_env.registry_table), counter.take(aws_env.events_table)) == (1, 1)
    for _ in range(3):  # the slot is known taken: 429 at once
        limited = record(api, body=body, ua=MOBILE_UA)
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 3
    assert (counter.take(aws_env.registry_table), counter.take(aws_env.events_table)) == (0, 0)
    # Drops still reach /v1/health (VTS_DROP_FLUSH_S is 0 here).
    operator = auth(aws_env, "ops", "service")
    drops = json.loads(api.http.get("/v1/health", headers=operator).body)["drops"]["today"]
    assert (drops["duplicate"], drops["rate_limited"]) == (3, 3)


def test_sec_gpc_is_honoured_by_the_server(api: Any, aws_env: Settings) -> None:
    register(api, aws_env)
    assert record(api, **{"Sec-GPC": "1"}).status_code == 204
    pixel = api.http.get("/v1/posts/1/pixel.gif", headers={"User-Agent": BROWSER_UA,
                                                           "Sec-GPC": "1", "Accept": "*/*"})
    assert pixel.status_code == 200 and pixel.headers["Content-Type"] == "image/gif"
    assert pixel.headers["X-VTS-Outcome"] == "gpc"
    assert events(aws_env) == []
    assert record(api, **{"Sec-GPC": "0"}).status_code == 201


@pytest.mark.parametrize("ua", ["python-requests/2.31 makapix-player/9", "Googlebot/2.1 divoom/1"])
def test_player_tokens_on_the_web_route_count_nothing(api: Any, aws_env: Settings, ua: str) -> None:
    register(api, aws_env)
    assert record(api, ua=ua).status_code == 204
    assert events(aws_env) == []


def test_one_address_with_many_user_agents_is_capped(
    api: Any, aws_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(api, aws_env)
    statuses = [record(api, ua=BROWSER_UA.replace("131.0.0.0", f"131.0.{n}.0")).status_code
                for n in range(24)]
    assert statuses.count(201) == 20 and statuses.count(204) == 4
    stored = events(aws_env)
    assert len(stored) == 20 and all("net" in item for item in stored)


def test_the_local_stack_alone_takes_the_forwarded_address(
    api: Any, aws_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(api, aws_env)
    # Without the switch a forged header changes nothing: one network.
    forged = [record(api, ua=BROWSER_UA.replace("131.0.0.0", f"131.0.{n}.0"),
                     **{"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(22)]
    assert forged.count(201) == 20
    monkeypatch.setenv("VTS_TRUST_FORWARDED_FOR", "1")
    many = [record(api, post_id=1, **{"X-Forwarded-For": f"192.0.2.{n}, 10.0.0.1"}).status_code
            for n in range(1, 26)]
    assert many == [201] * 25
