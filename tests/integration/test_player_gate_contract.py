"""The player gate (``Registry.admit`` / ``note_marked``): the same contract for the DynamoDB
registry (moto over HTTP) and the in-memory fake."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.storage import codec, gate, keys
from chalicelib.storage.ports import GATE_MAX_RING, GateClaim
from chalicelib.wiring import Services, dynamodb_services, memory_services
from tests.players_support import PLAYER, firmware_payload, rule_event

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)
INTERVAL_S, WINDOW_S = 5, 60  # the defaults: 1 report per 5 s, retransmissions within 60 s


@pytest.fixture(params=["memory", "dynamodb"])
def services(request: pytest.FixtureRequest) -> Services:
    if request.param == "memory":
        return memory_services(Settings())
    settings: Settings = request.getfixturevalue("aws_env")
    return dynamodb_services(settings)


def at(seconds: float) -> datetime:
    return AT + timedelta(seconds=seconds)


def claim(message: str, seconds: float, token: str | None = None) -> GateClaim:
    return GateClaim("player", "k", message, INTERVAL_S, WINDOW_S, at(seconds), token)


def admit(
    services: Services, message: str, seconds: float, token: str | None = None, **kw: Any
) -> Any:
    return services.registry.admit(claim(message, seconds, token), **kw)


def test_a_message_is_admitted_once_per_window(services: Services) -> None:
    assert admit(services, "1#t", 0, "e1").admitted
    again = admit(services, "1#t", 10, "e2")
    assert (again.admitted, again.repeat, again.wait_s) == (False, True, None)
    assert admit(services, "1#t", 59.999, "e3").repeat
    assert admit(services, "1#t", 60, "e4").admitted  # its window has passed


def test_the_slot_refuses_other_messages_until_it_frees(services: Services) -> None:
    assert admit(services, "1#a", 0, "e1").admitted
    refused = admit(services, "2#b", 1.5, "e2")
    assert (refused.admitted, refused.repeat) == (False, False)
    assert refused.wait_s == pytest.approx(3.5)
    assert admit(services, "2#b", 5, "e2").admitted


def test_a_retransmission_is_told_apart_from_a_held_slot(services: Services) -> None:
    assert admit(services, "1#a", 0, "e1").admitted
    both = admit(services, "1#a", 1, "e2")  # the slot is held too: the repeat is what counts
    assert both.repeat and both.wait_s == pytest.approx(4.0)


def test_a_redelivered_event_passes_its_own_slot_and_admission(services: Services) -> None:
    assert admit(services, "1#a", 0, "e1").admitted
    assert admit(services, "1#a", 1, "e1").admitted  # a Lambda retry of the same event
    assert admit(services, "1#a", 2).repeat  # no token: never a redelivery


def test_no_token_behaves_as_a_plain_claim(services: Services) -> None:
    assert admit(services, "1#a", 0).admitted
    assert admit(services, "1#a", 6).repeat
    assert admit(services, "2#b", 6).admitted
    assert admit(services, "3#c", 7).wait_s == pytest.approx(4.0)


def test_marked_refuses_one_write_admissions_until_it_passes(services: Services) -> None:
    registry = services.registry
    noted = registry.note_marked(claim("9#x", 0), AT_MS + 120_000)
    assert (noted.admitted, noted.repeat, noted.marked_until_ms) == (False, False, AT_MS + 120_000)
    refused = admit(services, "1#a", 1, "e1")
    assert (refused.admitted, refused.repeat, refused.wait_s) == (False, False, None)
    assert refused.marked_until_ms == AT_MS + 120_000
    assert admit(services, "1#a", 1, "e1", unless_marked=False).admitted
    assert admit(services, "2#b", 120, "e2").admitted


def test_marked_never_moves_back_and_tells_a_repeat(services: Services) -> None:
    registry = services.registry
    assert admit(services, "1#a", 0, "e1").admitted
    first = registry.note_marked(claim("1#a", 1, "e2"), AT_MS + 100_000)
    assert first.repeat and first.marked_until_ms == AT_MS + 100_000
    lower = registry.note_marked(claim("2#b", 2, "e3"), AT_MS + 50_000)
    assert not lower.repeat and lower.marked_until_ms == AT_MS + 100_000
    own = registry.note_marked(claim("1#a", 2, "e1"), AT_MS + 50_000)
    assert not own.repeat  # the admission's own event


def test_the_ring_keeps_every_admission_of_the_window(services: Services) -> None:
    # A report every interval for three windows: each stays a repeat for exactly its window.
    for n in range(3 * WINDOW_S // INTERVAL_S):
        t = n * INTERVAL_S
        assert admit(services, f"p{n}", t, f"e{n}").admitted
        for back in range(n + 1):
            if (n - back) * INTERVAL_S < WINDOW_S:
                assert admit(services, f"p{back}", t + 0.001, f"r{n}-{back}").repeat, (n, back)


def test_a_peek_tells_what_a_claim_would_meet_and_writes_nothing(services: Services) -> None:
    registry = services.registry

    def peek(message: str, seconds: float, token: str | None = None) -> Any:
        return registry.peek_gate(claim(message, seconds, token))

    empty = peek("1#a", 0, "e1")
    assert (empty.admitted, empty.repeat, empty.wait_s, empty.marked_until_ms) == (
        False,
        False,
        None,
        0,
    )
    assert admit(services, "1#a", 0, "e1").admitted
    seen = peek("1#a", 1, "e2")
    assert seen.repeat and seen.wait_s == pytest.approx(4.0)
    own = peek("1#a", 1, "e1")
    assert (own.repeat, own.wait_s) == (False, None)
    registry.note_marked(claim("x", 1), AT_MS + 90_000)
    assert peek("2#b", 6).marked_until_ms == AT_MS + 90_000
    assert admit(services, "2#b", 6, "e3", unless_marked=False).admitted


def test_a_slot_taken_the_old_way_is_honoured(services: Services) -> None:
    # The gate item is the player's rate slot item: a claim by take_slot holds it too.
    assert services.registry.take_slot("player", "k", INTERVAL_S, AT, token="old") is None
    assert admit(services, "1#a", 1, "e1").wait_s == pytest.approx(4.0)
    assert admit(services, "1#a", 2, "old").admitted  # the holder's own retry


def test_settings_a_ring_cannot_serve_are_refused(services: Services) -> None:
    for interval_s, window_s in ((0, 60), (1, GATE_MAX_RING * 1)):
        assert gate.ring_size(interval_s, window_s) is None
        with pytest.raises(ValueError, match="no gate"):
            services.registry.admit(GateClaim("player", "k", "1#a", interval_s, window_s, AT))


def test_a_full_gate_stays_under_one_kilobyte(services: Services) -> None:
    # The largest ring allowed, every slot in it written, the longest token the rule makes.
    interval_s, window_s = 4, 4 * (GATE_MAX_RING - 1)
    assert gate.ring_size(interval_s, window_s) == GATE_MAX_RING
    player = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"
    for n in range(GATE_MAX_RING):
        found = services.registry.admit(
            GateClaim(
                "player",
                player,
                f"{2**62 + n}#2026-11-24T10:00:00.000+05:30",
                interval_s,
                window_s,
                at(n * interval_s),
                f"{2**47}:{n:016x}",
            )
        )
        assert found.admitted
    services.registry.note_marked(
        GateClaim("player", player, "x", interval_s, window_s, AT), AT_MS + 10**9
    )
    pk, sk = keys.rate_key("player", player)
    if services.client is None:
        fake: Any = services.registry
        item = {"pk": pk, "sk": sk, **fake.rate_items[("player", player)]}
    else:
        answer = services.client.get_item(
            TableName=services.settings.registry_table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
        )
        item = codec.from_typed(answer["Item"])
    assert sum(1 for name in item if re.fullmatch(r"m\d+", name)) == GATE_MAX_RING
    assert codec.item_size(item) < 1024


def test_a_report_through_dynamodb_is_one_registry_write(aws_env: Settings) -> None:
    # Drop counters and the last-report note are flushed at most once a minute (as in AWS).
    services = dynamodb_services(replace(aws_env, drop_flush_s=60), clock=FixedClock(AT))
    services.posts.register(123, "artist-1")
    services.players.register(PLAYER, "owner-7")
    writes: dict[str, int] = {}

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in ("PutItem", "UpdateItem"):
            writes[params["TableName"]] = writes.get(params["TableName"], 0) + 1

    services.client.meta.events.register("before-parameter-build.dynamodb", count)
    assert services.player_views.record(rule_event(firmware_payload()))["outcome"] == "impression"
    assert writes == {aws_env.registry_table: 1, aws_env.events_table: 1}  # before: 2 + 1
