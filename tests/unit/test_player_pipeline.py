"""The player view pipeline on memory fakes: every firmware payload, every drop reason (each
counted once), retransmissions, rate, redelivery after a fault, and acks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.days import day_of
from chalicelib.enrich.visitor import user_visitor
from chalicelib.errors import StorageUnavailable
from chalicelib.model import HotMark, ViewEvent
from chalicelib.players.acks import MemoryAckPublisher
from chalicelib.players.pipeline import DROP_REASONS
from chalicelib.storage.keys import write_shard
from chalicelib.storage.memory import MemoryEventStore
from chalicelib.wiring import Services, memory_services
from tests.players_support import FIXTURES, PLAYER, firmware_payload, rule_event

OTHER_PLAYER = "0b8f6a2c-3d4e-4f50-8a61-7b2c9d0e1f23"
OWNER = "user-7"
ARTIST = "artist-1"
START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ACK_FIELDS = ["post_id", "timestamp", "success", "counted", "error_code", "error", "retry_after"]


class FlakyEventStore(MemoryEventStore):
    """Fails the first ``failures`` writes the way DynamoDB fails: storage unavailable."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def _put(self, event: ViewEvent, *, only_new: bool) -> bool:
        if self.failures:
            self.failures -= 1
            raise StorageUnavailable("DynamoDB answered ThrottlingException")
        return super()._put(event, only_new=only_new)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def services(clock: FixedClock) -> Iterator[Services]:
    services = memory_services(Settings(drop_flush_s=0), clock=clock)
    services.acks = MemoryAckPublisher()
    for post_id in range(100, 140):
        services.posts.register(post_id, ARTIST)
    services.posts.register(999, OWNER)  # the player's owner is also an artist
    services.players.register(PLAYER, OWNER, "BR", "America/Sao_Paulo")
    services.players.register(OTHER_PLAYER, OWNER)
    yield services


def record(services: Services, event: Any) -> dict[str, Any]:
    result: dict[str, Any] = services.player_views.record(event)
    return result


def drops(services: Services) -> dict[str, int]:
    services.drops.flush()
    return services.drop_store.get_drops([day_of(services.clock.now())])


def stored(services: Services, post_id: int) -> list[ViewEvent]:
    return list(services.events.day_events(post_id, day_of(services.clock.now())))


def acks(services: Services) -> list[dict[str, Any]]:
    return [payload for _topic, payload in services.acks.sent]


# ---- every message the firmware sends is accepted -------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_every_firmware_payload_is_accepted(services: Services, clock: FixedClock, name: str) -> None:
    payload = firmware_payload(name)
    result = record(services, rule_event(payload))
    view = payload["intent"] == "artwork"
    assert result["outcome"] == ("counted" if view else "impression")
    assert result["counted"] is view
    [event] = stored(services, payload["post_id"])
    assert event.intent == ("view" if view else "impression")
    assert (event.source, event.device, event.authenticated) == ("player", "player", True)
    assert event.visitor == user_visitor(services.settings.visitor_key, OWNER)
    assert event.owner_id == ARTIST
    assert (event.country, event.timezone) == ("BR", "America/Sao_Paulo")
    assert event.player_key == PLAYER and event.play_order == payload["play_order"]
    assert event.channel == payload["channel"]
    assert event.channel_context == (payload["channel_user_sqid"] or payload["channel_hashtag"])
    assert event.occurred_at == clock.now()
    assert drops(services) == {}


def test_a_frame_whose_clock_was_never_set_is_still_counted(services: Services) -> None:
    payload = firmware_payload("p3a_unset_clock")
    assert record(services, rule_event(payload))["outcome"] == "counted"
    [event] = stored(services, payload["post_id"])
    assert event.device_at is None


def test_a_set_clock_travels_as_device_time(services: Services) -> None:
    payload = firmware_payload("p3a_artwork_ack")
    record(services, rule_event(payload))
    [event] = stored(services, payload["post_id"])
    assert event.device_at == datetime(2026, 11, 24, 10, 2, 35, tzinfo=UTC)


@pytest.mark.parametrize(("intent", "kind"), [
    ("artwork", "view"), ("intentional", "view"), ("channel", "impression"), ("automated", "impression"),
])
def test_intents_map_to_views_and_impressions(services: Services, intent: str, kind: str) -> None:
    record(services, rule_event(firmware_payload(intent=intent)))
    [event] = stored(services, 123)
    assert event.intent == kind


def test_the_message_timezone_is_a_fallback_for_unregistered_zones(services: Services) -> None:
    payload = firmware_payload(player_key=OTHER_PLAYER, timezone="Europe/Berlin")
    record(services, rule_event(payload))
    [event] = stored(services, 123)
    assert (event.country, event.timezone) == (None, "Europe/Berlin")


# ---- drop reasons, each counted once ------------------------------------------------------


def test_every_drop_reason_is_counted_once(services: Services, clock: FixedClock) -> None:
    outcomes = []

    def send(payload: dict[str, Any], **kwargs: Any) -> None:
        outcomes.append(record(services, rule_event(payload, **kwargs))["outcome"])

    send(firmware_payload(post_id="not a number"))                                  # invalid
    send(firmware_payload(player_key=OTHER_PLAYER), topic_key=PLAYER)               # key mismatch
    send(firmware_payload(), client_id="someone-else")                              # client mismatch
    stranger = "11111111-2222-4333-8444-555555555555"
    send(firmware_payload(player_key=stranger))                                     # unregistered
    send(firmware_payload(intent="artwork"))                                        # counted
    send(firmware_payload(intent="artwork"))                                        # retransmission
    send(firmware_payload(intent="artwork", post_id=124, timestamp="2026-11-24T10:00:01Z"))  # rate
    clock.advance(5)
    send(firmware_payload(post_id=4242, timestamp="2026-11-24T10:00:05Z"))           # unknown post
    clock.advance(5)
    send(firmware_payload(post_id=999, timestamp="2026-11-24T10:00:10Z"))            # author view
    clock.advance(5)
    send(firmware_payload(intent="artwork", timestamp="2026-11-24T10:00:15Z"))       # duplicate
    clock.advance(5)
    services.posts.register(139, ARTIST, visible=False)
    send(firmware_payload(post_id=139, timestamp="2026-11-24T10:00:20Z"))            # not counting
    assert outcomes == [
        "player_invalid", "player_key_mismatch", "player_client_mismatch",
        "player_unregistered", "counted",
        "player_retransmission", "player_rate_limited", "player_unknown_post",
        "player_author_view", "player_duplicate", "player_post_not_counting",
    ]
    assert drops(services) == dict.fromkeys(DROP_REASONS, 1)


def test_a_revoked_player_is_dropped(services: Services) -> None:
    services.players.delete(OTHER_PLAYER)
    result = record(services, rule_event(firmware_payload(player_key=OTHER_PLAYER)))
    assert result["outcome"] == "player_unregistered"


def test_a_player_marked_revoked_is_refused_as_unregistered(services: Services) -> None:
    services.players.register(OTHER_PLAYER, OWNER, revoked=True)
    payload = firmware_payload(player_key=OTHER_PLAYER, request_ack=True)
    result = record(services, rule_event(payload))
    assert result == {"outcome": "player_unregistered", "counted": False, "acked": True}
    [ack] = acks(services)
    assert (ack["success"], ack["error_code"]) == (False, "unregistered")
    assert stored(services, payload["post_id"]) == []
    services.players.register(OTHER_PLAYER, OWNER)  # registered again: counts again
    again = firmware_payload(player_key=OTHER_PLAYER, intent="artwork")
    assert record(services, rule_event(again))["outcome"] == "counted"


@pytest.mark.parametrize("change", [{"visible": False}, {"deleted": True}])
def test_a_hidden_or_deleted_post_is_acked_but_not_counted(
    services: Services, change: dict[str, bool]
) -> None:
    services.posts.register(123, ARTIST, title="Dawn", **change)
    result = record(services, rule_event(firmware_payload(post_id=123, request_ack=True)))
    assert result == {"outcome": "player_post_not_counting", "counted": False, "acked": True}
    [ack] = acks(services)
    assert (ack["success"], ack["counted"], ack["error_code"]) == (True, False, None)
    assert stored(services, 123) == []
    assert drops(services) == {"player_post_not_counting": 1}


@pytest.mark.parametrize("event", [None, [], "text", 42, {}, {"topic_player_key": "not-a-uuid"}])
def test_shapeless_events_are_dropped_as_invalid(services: Services, event: Any) -> None:
    assert record(services, event)["outcome"] == "player_invalid"
    assert drops(services) == {"player_invalid": 1}


def test_a_frame_cannot_speak_for_another_frame(services: Services) -> None:
    # OTHER_PLAYER's own topic, claiming to be PLAYER in the payload: refused, nothing stored.
    result = record(services, rule_event(firmware_payload(), topic_key=OTHER_PLAYER))
    assert result["outcome"] == "player_key_mismatch"
    assert stored(services, 123) == []


@pytest.mark.parametrize("field", ["topic_player_key", "client_id", "received_at"])
def test_a_payload_posing_as_the_rule_never_reaches_the_handler(field: str) -> None:
    # E.g. a frame claiming to be the bridge: the rule's WHERE skips it (tests/unit/test_iot_rule.py).
    payload = firmware_payload(player_key=OTHER_PLAYER, **{field: "vts-bridge-makapix"})
    with pytest.raises(AssertionError, match="would not invoke"):
        rule_event(payload, topic_key=OTHER_PLAYER)


# ---- retransmissions and the rate --------------------------------------------------------


def test_a_retransmission_never_counts_against_the_rate(services: Services, clock: FixedClock) -> None:
    first = firmware_payload(intent="channel")
    assert record(services, rule_event(first, received_at=1))["outcome"] == "impression"
    clock.advance(5)
    # The broker redelivers the first report just as the slot frees...
    assert record(services, rule_event(first, received_at=2))["outcome"] == "player_retransmission"
    # ...and the next real report still gets the slot.
    second = firmware_payload(post_id=124, timestamp="2026-11-24T10:00:05Z")
    assert record(services, rule_event(second, received_at=3))["outcome"] == "impression"
    assert len(stored(services, 123)) == 1


def test_a_flood_of_reports_is_held_to_one_per_interval(services: Services, clock: FixedClock) -> None:
    outcomes = []
    for n in range(20):  # a frame cycling a channel every second
        payload = firmware_payload(post_id=100 + n, timestamp=f"2026-11-24T10:00:{n:02d}Z")
        outcomes.append(record(services, rule_event(payload, received_at=n))["outcome"])
        clock.advance(1)
    assert outcomes.count("impression") == 4  # at 0, 5, 10 and 15 s
    assert outcomes.count("player_rate_limited") == 16


def test_messages_received_in_the_same_millisecond_are_still_distinct(services: Services) -> None:
    # A flooding frame: two different reports stamped alike by the rule.
    first = firmware_payload(intent="channel")
    second = firmware_payload(post_id=124, timestamp="2026-11-24T10:00:00Z")
    assert record(services, rule_event(first, received_at=7))["outcome"] == "impression"
    assert record(services, rule_event(second, received_at=7))["outcome"] == "player_rate_limited"
    # The same message twice in that millisecond is one delivery: stored once.
    assert record(services, rule_event(first, received_at=7))["outcome"] == "impression"
    assert len(stored(services, 123)) == 1


def test_the_same_device_time_after_the_window_is_a_new_report(
    services: Services, clock: FixedClock
) -> None:
    payload = firmware_payload("p3a_unset_clock")  # every report carries the epoch
    assert record(services, rule_event(payload, received_at=1))["outcome"] == "counted"
    clock.advance(30)  # the firmware repeats a View every 30 s while the artwork stays
    assert record(services, rule_event(payload, received_at=2))["outcome"] == "player_retransmission"
    clock.advance(31)
    assert record(services, rule_event(payload, received_at=3))["outcome"] == "player_duplicate"


def test_views_count_once_per_owner_post_and_day(services: Services, clock: FixedClock) -> None:
    view = firmware_payload(intent="artwork")
    assert record(services, rule_event(view))["counted"] is True
    # The same owner's second frame shows the same artwork: the same Visitor.
    other = firmware_payload(intent="artwork", player_key=OTHER_PLAYER, timestamp="2026-11-24T10:00:09Z")
    assert record(services, rule_event(other))["outcome"] == "player_duplicate"
    clock.advance(86_400)
    tomorrow = firmware_payload(intent="artwork", timestamp="2026-11-25T10:00:00Z")
    assert record(services, rule_event(tomorrow))["counted"] is True


# ---- faults: only infrastructure raises, and a retried event is not lost ----------------


def test_a_storage_fault_raises_and_the_retried_event_is_counted(clock: FixedClock) -> None:
    services = memory_services(Settings(drop_flush_s=0), clock=clock)
    services.events = FlakyEventStore(failures=1)
    services.acks = MemoryAckPublisher()
    services.posts.register(123, ARTIST)
    services.players.register(PLAYER, OWNER)
    event = rule_event(firmware_payload(intent="artwork", request_ack=True))
    with pytest.raises(StorageUnavailable):
        record(services, event)
    assert acks(services)[-1]["error_code"] == "internal_error"
    clock.advance(1)  # Lambda retries the same event: not a retransmission, not rate-limited
    assert record(services, event)["outcome"] == "counted"
    assert acks(services)[-1] == {
        "post_id": 123, "timestamp": "2026-11-24T10:00:00Z", "success": True, "counted": True,
        "error_code": None, "error": None, "retry_after": None,
    }
    assert drops(services) == {}


def test_a_retried_impression_is_stored_once(clock: FixedClock) -> None:
    services = memory_services(Settings(), clock=clock)
    services.events = FlakyEventStore(failures=0)
    services.posts.register(123, ARTIST)
    services.players.register(PLAYER, OWNER)
    event = rule_event(firmware_payload())
    assert record(services, event)["outcome"] == "impression"
    assert record(services, event)["outcome"] == "impression"  # a duplicate Lambda delivery
    assert len(stored(services, 123)) == 1


# ---- acks --------------------------------------------------------------------------------


def test_no_ack_unless_asked(services: Services) -> None:
    result = record(services, rule_event(firmware_payload()))
    assert result["acked"] is False and acks(services) == []


def test_acks_carry_the_design_fields(services: Services, clock: FixedClock) -> None:
    def ask(**changes: Any) -> dict[str, Any]:
        # As a frame does, each report carries the frame's clock.
        sent = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        record(services, rule_event(firmware_payload(request_ack=True, timestamp=sent, **changes)))
        topic, payload = services.acks.sent[-1]
        assert topic == f"makapix/player/{changes.get('player_key', PLAYER)}/view/ack"
        assert list(payload) == ACK_FIELDS
        return payload

    assert ask(intent="artwork") == {
        "post_id": 123, "timestamp": "2026-11-24T10:00:00Z", "success": True, "counted": True,
        "error_code": None, "error": None, "retry_after": None,
    }
    limited = ask(post_id=124)
    assert (limited["success"], limited["error_code"], limited["retry_after"]) == (False, "rate_limited", 5)
    clock.advance(5)
    missing = ask(post_id=4242)
    assert (missing["success"], missing["error_code"]) == (False, "not_found")
    stranger = "11111111-2222-4333-8444-555555555555"
    assert ask(player_key=stranger)["error_code"] == "unregistered"
    broken = ask(play_order=7)
    assert (broken["error_code"], broken["post_id"]) == ("invalid", 123)
    assert "play_order" in broken["error"]
    clock.advance(5)
    impression = ask(post_id=125)
    assert (impression["success"], impression["counted"], impression["error_code"]) == (True, False, None)


def test_a_failing_ack_transport_never_fails_the_report(services: Services) -> None:
    class Broken:
        def publish(self, topic: str, payload: bytes) -> None:
            raise ConnectionError("broker gone")

    services.player_views._acks = Broken()  # the recorder's own collaborator, replaced
    result = record(services, rule_event(firmware_payload(intent="artwork", request_ack=True)))
    assert (result["outcome"], result["acked"]) == ("counted", False)


# ---- who may speak for a key (DESIGN §4) -----------------------------------------------------


@pytest.mark.parametrize("client_id", [f"p3a-{PLAYER}", PLAYER, "vts-bridge-makapix"])
def test_the_frame_itself_and_a_trusted_bridge_speak_for_the_key(
    services: Services, client_id: str
) -> None:
    result = record(services, rule_event(firmware_payload(intent="artwork"), client_id=client_id))
    assert result["outcome"] == "counted"


@pytest.mark.parametrize("client_id", [
    None, "", "p3a-" + OTHER_PLAYER, OTHER_PLAYER, "vts-bridge-other", f"P3A-{PLAYER}", 42,
])
def test_any_other_publisher_is_dropped_and_spends_nothing(
    services: Services, client_id: Any
) -> None:
    event = rule_event(firmware_payload(intent="artwork", request_ack=True), client_id="x")
    event["client_id"] = client_id
    result = record(services, event)
    assert result == {"outcome": "player_client_mismatch", "counted": False, "acked": False}
    assert drops(services) == {"player_client_mismatch": 1}
    assert stored(services, 123) == []
    # The frame's own report right after is neither rate-limited nor a retransmission.
    again = record(services, rule_event(firmware_payload(intent="artwork")))
    assert again["outcome"] == "counted"


def test_trusted_bridges_come_from_the_settings(clock: FixedClock) -> None:
    services = memory_services(
        Settings(drop_flush_s=0, player_bridges=("edge-1",)), clock=clock
    )
    services.posts.register(123, ARTIST)
    services.players.register(PLAYER, OWNER)
    bridged = rule_event(firmware_payload(), client_id="vts-bridge-makapix")
    assert record(services, bridged)["outcome"] == "player_client_mismatch"
    assert record(services, rule_event(firmware_payload(), client_id="edge-1"))["outcome"] == (
        "impression"
    )


# ---- a backlog delivered at once (a bridge back from an outage) ------------------------------


def _report_at(second: int, post_id: int) -> dict[str, Any]:
    at = START.replace(second=second).strftime("%Y-%m-%dT%H:%M:%SZ")
    return firmware_payload(intent="artwork", post_id=post_id, timestamp=at)


def test_a_backlog_is_rated_by_the_frames_clock(services: Services, clock: FixedClock) -> None:
    # Reports sent 10 s apart during an outage all arrive 40 s later, in the same second.
    clock.advance(40)
    bridge = "vts-bridge-makapix"
    outcomes = [
        record(services, rule_event(_report_at(s, 100 + s), client_id=bridge))["outcome"]
        for s in (0, 10, 20, 30)
    ]
    assert outcomes == ["counted"] * 4
    # Mosquitto's redelivery of one of them is still a retransmission.
    redelivered = rule_event(_report_at(20, 120), client_id=bridge)
    assert record(services, redelivered)["outcome"] == "player_retransmission"
    # And reports closer than the interval by the frame's own clock are still held to it.
    assert record(services, rule_event(_report_at(33, 133), client_id=bridge))["outcome"] == (
        "player_rate_limited"
    )


def test_a_clock_far_from_ours_does_not_widen_the_rate(services: Services, clock: FixedClock) -> None:
    # Timestamps beyond the backlog window (or far ahead) are measured by arrival instead.
    far = ["2026-11-24T07:00:00Z", "2026-11-24T07:00:10Z", "2026-11-24T13:00:00Z"]
    outcomes = [
        record(services, rule_event(firmware_payload(intent="artwork", post_id=100 + n, timestamp=t)))[
            "outcome"
        ]
        for n, t in enumerate(far)
    ]
    assert outcomes == ["counted", "player_rate_limited", "player_rate_limited"]


def test_an_event_nested_past_any_use_raises_nothing(services: Services) -> None:
    event = rule_event(firmware_payload())
    nested: Any = []
    for _ in range(5000):
        nested = [nested]
    event["extra"] = nested  # an unknown field, ignored like any other
    assert record(services, event)["outcome"] == "impression"



def test_a_hot_posts_player_looks_go_to_the_owners_write_shard(services: Services) -> None:
    services.registry.mark_hot(100, HotMark(10, START + timedelta(days=1)))
    for n, (intent, outcome) in enumerate((("artwork", "counted"), ("channel", "impression"))):
        sent = f"2026-11-24T10:00:{10 * n:02d}Z"
        payload = firmware_payload(post_id=100, intent=intent, timestamp=sent)
        assert record(services, rule_event(payload))["outcome"] == outcome
        services.clock.advance(10)  # type: ignore[attr-defined]
    shard = write_shard(user_visitor(services.settings.visitor_key, OWNER), 10)
    day = day_of(services.clock.now())
    on_shard = services.events.day_events(100, day, shard)
    assert sorted(e.intent for e in on_shard) == ["impression", "view"]
    assert stored(services, 100) == []
