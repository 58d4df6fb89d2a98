"""PlayerViewMessage and the player registry's validation (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.clock import FixedClock
from chalicelib.errors import BadRequest, NotFound
from chalicelib.players.directory import PlayerDirectory
from chalicelib.players.schema import (
    InvalidReport,
    canonical_player_key,
    channel_token,
    parse_message,
)
from chalicelib.storage.memory import MemoryRegistry
from tests.players_support import FIXTURES, PLAYER, firmware_payload


@pytest.mark.parametrize("name", FIXTURES)
def test_firmware_payloads_parse(name: str) -> None:
    message = parse_message(firmware_payload(name))
    assert message.player_key == PLAYER
    assert message.timezone is None  # the firmware always sends ""


def test_json_null_and_missing_optional_fields_are_tolerated() -> None:
    payload = {"post_id": 5, "intent": "channel", "player_key": PLAYER, "timestamp": None,
               "timezone": None, "play_order": None, "channel": None, "channel_user_sqid": None,
               "channel_hashtag": None, "request_ack": None, "playlist_id": None}
    message = parse_message(payload)
    assert (message.device_at, message.play_order, message.channel, message.request_ack) == (
        None, None, None, False)
    minimal = parse_message({"post_id": 5, "intent": "artwork", "player_key": PLAYER})
    assert minimal.is_view and minimal.channel_context is None


@pytest.mark.parametrize(("text", "expected"), [
    ("1970-01-01T00:00:00Z", None),  # the firmware's "clock not set"
    ("1970-01-01T00:07:12Z", None),  # a clock counting from boot, never synchronised
    ("2026-11-24T10:00:00Z", datetime(2026, 11, 24, 10, tzinfo=UTC)),
    ("2026-11-24T10:00:00.250+01:00", datetime(2026, 11, 24, 9, 0, 0, 250000, tzinfo=UTC)),
    ("2026-11-24T10:00:00", datetime(2026, 11, 24, 10, tzinfo=UTC)),
])
def test_device_times(text: str, expected: datetime | None) -> None:
    assert parse_message(firmware_payload(timestamp=text)).device_at == expected


@pytest.mark.parametrize(("given", "stored"), [
    ("reactions", "reactions"), ("community_picks", "community_picks"),  # unknown: kept
    ("New-Channel", "new_channel"), ("x" * 40, "x" * 32), ("---", None), ("", None),
])
def test_channels_are_kept_as_tokens(given: str, stored: str | None) -> None:
    assert parse_message(firmware_payload(channel=given)).channel == stored
    if stored:
        assert channel_token(given) == stored


def test_channel_context_follows_the_channel() -> None:
    both = firmware_payload(channel="hashtag", channel_user_sqid="k3Jx9", channel_hashtag="pixelart")
    assert parse_message(both).channel_context == "pixelart"
    assert parse_message(firmware_payload(channel_user_sqid="s" * 200)).channel_context == "s" * 100


@pytest.mark.parametrize("post_id", [123, "123", 123.0])
def test_post_ids(post_id: Any) -> None:
    assert parse_message(firmware_payload(post_id=post_id)).post_id == 123


@pytest.mark.parametrize("changes", [
    {"post_id": True}, {"post_id": 0}, {"post_id": -3}, {"post_id": 1.5}, {"post_id": "12a"},
    {"post_id": None}, {"intent": "glance"}, {"intent": None}, {"play_order": 3},
    {"play_order": True}, {"play_order": "first"}, {"timestamp": "yesterday"}, {"timestamp": 5},
    {"channel": 7}, {"player_key": None}, {"request_ack": "perhaps"}, {"playlist_id": "p" * 65},
    {"timezone": "z" * 65},
])
def test_invalid_fields(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidReport):
        parse_message(firmware_payload(**changes))


def test_rule_fields_are_not_payload_fields() -> None:
    message = parse_message({**firmware_payload(), "topic_player_key": "x", "received_at": "y"})
    assert message.post_id == 123


def test_player_keys() -> None:
    assert canonical_player_key(PLAYER.upper()) == PLAYER
    for bad in (None, 7, "", "not-a-uuid", PLAYER.replace("-", ""), "{" + PLAYER[1:-1] + "}"):
        assert canonical_player_key(bad) is None


def test_registration_validates_and_normalises() -> None:
    at = datetime(2026, 11, 24, tzinfo=UTC)
    directory = PlayerDirectory(MemoryRegistry(), FixedClock(at), cache_s=60)
    record, created = directory.register(PLAYER.upper(), "owner-1", "br", "America/Sao_Paulo")
    assert created and (record.player_key, record.country, record.timezone) == (
        PLAYER, "BR", "America/Sao_Paulo")
    again, created = directory.register(PLAYER, "owner-2", "", None)
    assert not created and again.registered_at == at and again.country is None
    assert directory.get(PLAYER) == again
    for args, code in [
        (("nope", "o"), "invalid_player_key"),
        ((PLAYER, ""), "invalid_owner_id"),
        ((PLAYER, "o", "BRA"), "invalid_country"),
        ((PLAYER, "o", None, "Mars/Olympus"), "invalid_timezone"),
        ((PLAYER, "o", None, "../../etc/passwd"), "invalid_timezone"),
    ]:
        with pytest.raises(BadRequest) as error:
            directory.register(*args)
        assert error.value.code == code
    directory.delete(PLAYER)
    assert directory.get(PLAYER) is None
    with pytest.raises(NotFound):
        directory.delete(PLAYER)
