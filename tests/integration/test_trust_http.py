"""Counts you can trust (DESIGN §8) through the Chalice app, backed by moto over HTTP:
token rules, the private health report, and signed-in ids stored only as keyed hashes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from chalicelib.config import Settings, get_settings
from chalicelib.enrich.visitor import user_visitor
from tests.conftest import BROWSER_UA, auth
from tests.players_support import firmware_payload, rule_event

pytestmark = pytest.mark.integration

DAY_S = 86_400
OPERATOR_KEYS = {"status", "stage", "now", "drops", "players", "rollup"}


def bearer(settings: Settings, **claims: Any) -> dict[str, str]:
    """A token with exactly these claims (``iat``/``exp`` as offsets in seconds from now)."""
    now = datetime.now(UTC)
    for name in ("iat", "exp"):
        if name in claims:
            claims[name] = now + timedelta(seconds=claims[name])
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def register_post(api: Any, settings: Settings, headers: dict[str, str], post_id: int = 1) -> Any:
    return api.http.put(
        f"/v1/posts/{post_id}",
        headers={**headers, "Content-Type": "application/json"},
        body=json.dumps({"owner_id": "artist-1"}),
    )


def artist_stats(api: Any, headers: dict[str, str]) -> Any:
    return api.http.get("/v1/artists/artist-1/stats", headers=headers)


def code(response: Any) -> str:
    return str(json.loads(response.body)["error"]["code"])


# ---- tokens -------------------------------------------------------------------------------


def test_a_token_without_exp_is_401(api: Any, aws_env: Settings) -> None:
    answer = artist_stats(api, bearer(aws_env, sub="artist-1", role="artist", iat=0))
    assert answer.status_code == 401 and code(answer) == "token_without_exp"


def test_a_persons_token_lives_a_day_at_most(api: Any, aws_env: Settings) -> None:
    week = bearer(aws_env, sub="artist-1", role="artist", iat=0, exp=7 * DAY_S)
    answer = artist_stats(api, week)
    assert answer.status_code == 401 and code(answer) == "token_lifetime_too_long"
    admin_week = bearer(aws_env, sub="ops", role="admin", iat=0, exp=7 * DAY_S)
    assert register_post(api, aws_env, admin_week).status_code == 401
    day = bearer(aws_env, sub="artist-1", role="artist", iat=0, exp=DAY_S)
    assert artist_stats(api, day).status_code == 200


def test_a_service_token_lives_thirty_days_at_most(api: Any, aws_env: Settings) -> None:
    days_29 = bearer(aws_env, sub="platform", role="service", iat=0, exp=29 * DAY_S)
    assert register_post(api, aws_env, days_29).status_code == 201
    days_31 = bearer(aws_env, sub="platform", role="service", iat=0, exp=31 * DAY_S)
    answer = register_post(api, aws_env, days_31, post_id=2)
    assert answer.status_code == 401 and code(answer) == "token_lifetime_too_long"


def test_issuer_and_audience_when_configured(
    api: Any, aws_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VTS_JWT_ISSUER", "https://vts.example")
    monkeypatch.setenv("VTS_JWT_AUDIENCE", "vts")
    settings = get_settings()
    assert artist_stats(api, auth(settings, "artist-1", "artist")).status_code == 200
    claims = {"sub": "artist-1", "role": "artist", "iat": 0, "exp": 60,
              "iss": "https://vts.example", "aud": "vts"}
    for changes, expected in (
        ({"iss": "https://elsewhere.example"}, "invalid_issuer"),
        ({"aud": "another-service"}, "invalid_audience"),
    ):
        answer = artist_stats(api, bearer(settings, **{**claims, **changes}))
        assert answer.status_code == 401 and code(answer) == expected
    # The tokens of before (no iss, no aud) stop working once both are set.
    assert artist_stats(api, auth(aws_env, "artist-1", "artist")).status_code == 401


def test_a_short_secret_stops_the_stack_naming_the_variable(
    api: Any, aws_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VTS_JWT_SECRET", "only-twenty-one-bytes")
    for answer in (api.http.get("/v1/health"), artist_stats(api, {})):
        body = json.loads(answer.body)["error"]
        assert answer.status_code == 500 and body["code"] == "config_error"
        assert "VTS_JWT_SECRET must be at least 32 bytes" in body["message"]


# ---- health -------------------------------------------------------------------------------


def test_health_is_public_in_short_and_private_in_full(api: Any, aws_env: Settings) -> None:
    for headers in ({}, auth(aws_env, "artist-1", "artist"), auth(aws_env, "fan", "viewer")):
        answer = api.http.get("/v1/health", headers=headers)
        assert answer.status_code == 200 and json.loads(answer.body) == {"status": "ok"}
    for role in ("admin", "service"):
        answer = api.http.get("/v1/health", headers=auth(aws_env, "ops", role))
        assert answer.status_code == 200 and set(json.loads(answer.body)) == OPERATOR_KEYS
    broken = api.http.get("/v1/health", headers={"Authorization": "Bearer not.a.token"})
    assert broken.status_code == 401


class DynamoCalls:
    """Every DynamoDB operation the app's own boto3 client sends."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


def test_a_public_health_call_writes_nothing_and_reads_once(
    api: Any, aws_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.wiring import get_services

    monkeypatch.setenv("VTS_DROP_FLUSH_S", "60")  # drop counters stay buffered
    assert register_post(api, aws_env, auth(aws_env, "platform", "service")).status_code == 201
    bot = {"User-Agent": "curl/8.5.0", "Content-Type": "text/plain"}
    assert api.http.post("/v1/posts/1/views", headers=bot, body="").status_code == 204
    calls = DynamoCalls()
    get_services().client.meta.events.register("before-parameter-build.dynamodb", calls)
    for _ in range(3):
        assert json.loads(api.http.get("/v1/health").body) == {"status": "ok"}
    assert calls.names == ["GetItem"] * 3
    # The operator's report flushes the buffered counters, as it always did.
    operator = auth(aws_env, "ops", "admin")
    report = json.loads(api.http.get("/v1/health", headers=operator).body)
    assert report["drops"]["today"] == {"bot": 1}
    assert "UpdateItem" in calls.names[3:]


# ---- visitor privacy ----------------------------------------------------------------------


def test_signed_in_and_player_owner_ids_are_stored_only_as_keyed_hashes(
    api: Any, aws_env: Settings
) -> None:
    from chalicelib.wiring import dynamodb_client

    fan, owner = "fan-sub-visible-in-clear", "player-owner-visible-in-clear"
    service = auth(aws_env, "platform", "service")
    assert register_post(api, aws_env, service).status_code == 201
    key = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"
    answer = api.http.put(
        f"/v1/players/{key}", headers={**service, "Content-Type": "application/json"},
        body=json.dumps({"owner_id": owner}),
    )
    assert answer.status_code == 201
    viewer = {**auth(aws_env, fan, "viewer"), "User-Agent": BROWSER_UA, "Content-Type": "text/plain"}
    assert api.http.post("/v1/posts/1/views", headers=viewer, body="").status_code == 201
    assert api.http.post("/v1/posts/1/views", headers=viewer, body="").status_code == 204  # dedup
    impression = json.dumps({"intent": "impression"})
    assert api.http.post("/v1/posts/1/views", headers=viewer, body=impression).status_code == 204
    report = firmware_payload("p3a_artwork_ack", post_id=1, player_key=key, request_ack=False)
    assert api.lambda_.invoke("player_views", rule_event(report)).payload["outcome"] == "counted"
    again = firmware_payload("p3a_artwork_ack", post_id=1, player_key=key, request_ack=False,
                             timestamp="2026-11-24T10:09:00Z")
    outcome = api.lambda_.invoke("player_views", rule_event(again)).payload["outcome"]
    assert outcome in ("player_duplicate", "player_rate_limited")  # never a second View

    client = dynamodb_client(aws_env)
    events = client.scan(TableName=aws_env.events_table)["Items"]
    visitors = sorted(item["vis"]["S"] for item in events if item["sk"]["S"].startswith("V#"))
    assert visitors == sorted([user_visitor(aws_env.visitor_key, fan),
                               user_visitor(aws_env.visitor_key, owner)])
    assert fan not in json.dumps(events) and owner not in json.dumps(events)
    # The Impression's rate slot is keyed by the Visitor too: no sub there either.
    registry = client.scan(TableName=aws_env.registry_table)["Items"]
    assert fan not in json.dumps(registry)
