"""Edge validation of recording bodies, post ids, bearer tokens and settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.auth import claims_from_header, issue_token, require_role
from chalicelib.config import get_settings
from chalicelib.errors import (
    BadRequest,
    ConfigError,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
)
from chalicelib.ingest.schema import parse_body
from chalicelib.model import parse_post_id

SECRET = "a-test-secret-of-at-least-32-bytes-long"
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_an_empty_body_means_a_web_view() -> None:
    for raw in (None, b"", b"  "):
        request = parse_body(raw)
        assert (request.intent, request.source, request.channel) == ("view", "web", None)


def test_a_full_body_is_read() -> None:
    raw = json.dumps(
        {
            "intent": "impression",
            "source": "widget",
            "channel": "by_user",
            "channel_context": "k3Jx9",
            "referrer": "https://example.com/x",
            "playlist_id": "p1",
            "future_field": 1,
        }
    ).encode()
    request = parse_body(raw)
    assert request.intent == "impression" and request.source == "widget"
    assert request.channel == "by_user" and request.referrer == "https://example.com/x"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{", "invalid_json"),
        (b"[1]", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"intent": "stare"}', "invalid_field"),
        (b'{"source": "player"}', "invalid_field"),
        (b'{"channel": "Has Spaces"}', "invalid_field"),
        (b'{"channel": "' + b"a" * 33 + b'"}', "invalid_field"),
        (b'{"channel_context": "' + b"c" * 101 + b'"}', "invalid_field"),
        (b'{"playlist_id": "' + b"p" * 65 + b'"}', "invalid_field"),
        (b'{"referrer": "not a url"}', "invalid_field"),
        (b'{"intent": 3}', "invalid_field"),
    ],
)
def test_bad_bodies_are_rejected_with_a_code(raw: bytes, code: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_body(raw)
    assert caught.value.code == code
    assert caught.value.message


def test_a_body_over_two_kilobytes_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_body(b'{"channel_context": "' + b"x" * 3000 + b'"}')


@pytest.mark.parametrize("text", ["1", "123", 7, "999999999999999999"])
def test_post_ids(text: object) -> None:
    assert parse_post_id(text) == int(text)  # type: ignore[call-overload]


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "", " 1", True, None, 0, "1" * 30])
def test_bad_post_ids(text: object) -> None:
    with pytest.raises(BadRequest):
        parse_post_id(text)


def test_tokens_round_trip_and_roles_are_checked() -> None:
    token = issue_token(SECRET, sub="42", role="artist", now=datetime.now(UTC))
    claims = claims_from_header(f"Bearer {token}", SECRET)
    assert claims is not None and (claims.sub, claims.role) == ("42", "artist")
    assert require_role(claims, ("artist",)) == claims
    with pytest.raises(Forbidden):
        require_role(claims, ("service",))
    with pytest.raises(Unauthorized):
        require_role(None, ("artist",))
    assert claims_from_header(None, SECRET) is None


@pytest.mark.parametrize(
    "header",
    ["Basic abc", "Bearer", "Bearer not.a.jwt", "token"],
)
def test_malformed_authorization_is_unauthorized(header: str) -> None:
    with pytest.raises(Unauthorized):
        claims_from_header(header, SECRET)


def test_wrong_secret_and_expired_tokens_are_unauthorized() -> None:
    token = issue_token(
        "another-secret-that-is-long-enough-0123", sub="42", role="artist", now=datetime.now(UTC)
    )
    with pytest.raises(Unauthorized):
        claims_from_header(f"Bearer {token}", SECRET)
    old = issue_token(SECRET, sub="42", role="artist", now=datetime.now(UTC) - timedelta(days=3))
    with pytest.raises(Unauthorized) as caught:
        claims_from_header(f"Bearer {old}", SECRET)
    assert caught.value.code == "token_expired"


def test_settings_reject_bad_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VTS_EVENT_TTL_DAYS", "soon")
    with pytest.raises(ConfigError, match="VTS_EVENT_TTL_DAYS"):
        get_settings()
    monkeypatch.setenv("VTS_EVENT_TTL_DAYS", "0")
    with pytest.raises(ConfigError, match="between"):
        get_settings()
    monkeypatch.setenv("VTS_EVENT_TTL_DAYS", "40")
    assert get_settings().event_ttl_days == 40


def test_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VTS_STAGE", "prod")
    monkeypatch.delenv("VTS_EVENTS_TABLE", raising=False)
    assert get_settings().events_table == "vts-prod-events"
    monkeypatch.setenv("VTS_ACK_TRANSPORT", "pigeon")
    with pytest.raises(ConfigError, match="VTS_ACK_TRANSPORT"):
        get_settings()
