"""Property tests: malformed reports and topics thrown at the player_views handler.

No exception may escape, and every malformed report is dropped with its reason, counted
exactly once. Memory services only; one rule event per example, built by the real rule.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.days import day_of
from chalicelib.players.acks import MemoryAckPublisher
from chalicelib.players.pipeline import DROP_REASONS, OUTCOMES
from chalicelib.wiring import Services, memory_services
from tests.players_support import PLAYER, RULE, firmware_payload, view_topic

OTHER = "0b8f6a2c-3d4e-4f50-8a61-7b2c9d0e1f23"
AT = datetime(2026, 11, 24, 10, tzinfo=UTC)
FAST = settings(
    max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)
containers = st.one_of(st.lists(json_scalars, max_size=2), st.dictionaries(st.text(max_size=5), json_scalars, max_size=2))
wordy = st.text(alphabet=string.ascii_letters + " -_!", min_size=1, max_size=30)  # never a number

# Values each field can never accept (pydantic's lax coercions left out on purpose).
INVALID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "post_id": st.one_of(st.none(), st.booleans(), st.integers(max_value=0), st.integers(min_value=2**63),
                         st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
                         wordy, containers),
    "intent": st.one_of(st.none(), st.integers(), containers,
                        st.text(max_size=20).filter(lambda s: s not in ("artwork", "intentional", "channel", "automated"))),
    "play_order": st.one_of(st.booleans(), st.integers().filter(lambda n: not 0 <= n <= 2), wordy, containers),
    "timestamp": st.one_of(st.booleans(), st.integers(), containers,
                           st.text(alphabet=string.ascii_letters, min_size=1, max_size=20)),
    "channel": st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False), containers),
    "channel_user_sqid": st.one_of(st.booleans(), st.integers(), containers),
    "channel_hashtag": st.one_of(st.booleans(), st.integers(), containers),
    "player_key": st.one_of(st.none(), st.booleans(), st.integers(), containers),
    "request_ack": st.one_of(containers, st.floats(min_value=0.1, max_value=0.9), wordy.filter(
        lambda s: s.lower() not in ("true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"))),
    "playlist_id": st.one_of(st.just(""), st.text(min_size=65, max_size=80), st.integers(), containers),
    "timezone": st.one_of(st.integers(), containers, st.text(min_size=65, max_size=70)),
}
REQUIRED = ("post_id", "intent", "player_key")
not_a_uuid = st.one_of(
    st.text(max_size=40).filter(lambda s: "/" not in s and len(s) != 36),
    st.just(PLAYER.replace("-", "")), st.just("+"), st.just(PLAYER[:-1] + "g"),
)


BASE = firmware_payload()  # read once: no file I/O per example


def fresh_services() -> Services:
    services = memory_services(Settings(drop_flush_s=3600), clock=FixedClock(AT))
    services.acks = MemoryAckPublisher()
    services.posts.register(123, "artist-1")
    services.players.register(PLAYER, "owner-1", "BR")
    services.players.register(OTHER, "owner-2")
    return services


def handle(services: Services, event: Any) -> dict[str, Any]:
    result: dict[str, Any] = services.player_views.record(event)
    assert result["outcome"] in OUTCOMES
    return result


def dropped(services: Services) -> dict[str, int]:
    services.drops.flush()
    return services.drop_store.get_drops([day_of(AT)])


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, bytes | Any, str]:
    """(topic key, payload bytes or a raw event, the drop reason it must get)."""
    payload = {**BASE, "request_ack": draw(st.booleans())}
    kind = draw(st.sampled_from(["field", "missing", "topic", "shape", "mismatch", "bytes"]))
    if kind == "field":
        for name in draw(st.lists(st.sampled_from(sorted(INVALID_VALUES)), min_size=1, max_size=3, unique=True)):
            payload[name] = draw(INVALID_VALUES[name])
        return PLAYER, json.dumps(payload).encode(), "player_invalid"
    if kind == "missing":
        for name in draw(st.lists(st.sampled_from(REQUIRED), min_size=1, unique=True)):
            del payload[name]
        return PLAYER, json.dumps(payload).encode(), "player_invalid"
    if kind == "topic":
        return draw(not_a_uuid), json.dumps(payload).encode(), "player_invalid"
    if kind == "mismatch":
        payload["player_key"] = draw(st.sampled_from([OTHER, "11111111-2222-4333-8444-555555555555"]))
        return PLAYER, json.dumps(payload).encode(), "player_key_mismatch"
    if kind == "bytes":
        # Not a JSON object: IoT sends it to the error action; a direct invoke gets it raw.
        raw = draw(st.one_of(st.binary(max_size=40), st.just(b"{"), st.just(b"[1]")))
        return PLAYER, raw, "player_invalid"
    return PLAYER, draw(st.one_of(json_scalars, containers)), "player_invalid"


@FAST
@given(case=malformed())
def test_malformed_reports_are_dropped_with_their_reason(case: tuple[str, Any, str]) -> None:
    topic_key, payload, reason = case
    services = fresh_services()
    event: Any = payload
    if isinstance(payload, bytes):
        event = RULE.build_event(view_topic(topic_key), payload, f"p3a-{topic_key}", 1_795_514_400_000)
        if event is None:
            try:
                event = json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                event = payload.decode("latin-1")
    result = handle(services, event)
    assert result["outcome"] == reason
    assert result["counted"] is False
    assert dropped(services) == {reason: 1}
    assert list(services.events.day_events(123, "2026-11-24")) == []
    for _topic, ack in services.acks.sent:
        assert ack["success"] is False and ack["error_code"] == "invalid"


arbitrary_events = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["post_id", "timestamp", "timezone", "intent", "play_order", "channel",
                         "player_key", "channel_user_sqid", "channel_hashtag", "request_ack",
                         "playlist_id", "topic_player_key", "client_id", "received_at"]),
        st.one_of(json_scalars, st.sampled_from([PLAYER, OTHER, 123, "artwork", "channel"])),
        max_size=14,
    ),
)


@settings(max_examples=1_000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(events=st.lists(arbitrary_events, min_size=1, max_size=5))
def test_any_event_is_handled_and_accounted_for(events: list[Any]) -> None:
    services = fresh_services()
    outcomes = [handle(services, event)["outcome"] for event in events]
    drops = dropped(services)
    assert sum(drops.values()) == sum(1 for o in outcomes if o in DROP_REASONS)
    for reason, n in drops.items():
        assert outcomes.count(reason) == n
    stored = list(services.events.day_events(123, "2026-11-24"))
    assert len(stored) == sum(1 for o in outcomes if o in ("counted", "impression"))
