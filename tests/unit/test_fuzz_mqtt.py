"""Bad input never yields an escaped exception (DESIGN §4, §8; issue 13): MQTT.

At least 10,000 generated player reports through the real ``player_views`` handler
(``services.player_views.record``) over in-memory services. Each is published on a
generated topic by a generated client at a generated time, and reaches the handler only as
the real rule builds it (``iot_rules/player_views.json``): what IoT would not invoke the
Lambda for is skipped. Payloads carry the firmware's fields with values of every JSON type,
extreme timestamps and zones, unicode, nesting, fields missing and fields added. Every
report answers a dict with a known ``outcome``, nothing raises, and every ack sent is the
documented JSON. Deterministic (``derandomize``), no database.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.players.acks import MemoryAckPublisher
from chalicelib.players.pipeline import OUTCOMES
from chalicelib.wiring import Services, memory_services
from iot_rules import player_views_rule
from tests.conftest import load_event

RULE = player_views_rule()
AT = datetime(2026, 11, 24, 10, tzinfo=UTC)
RECEIVED_MS = int(AT.timestamp() * 1000)
PLAYER = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"  # registered: owner-1, BR, a zone
OTHER = "0b8f6a2c-3d4e-4f50-8a61-7b2c9d0e1f23"  # registered: owner-2, nothing else
REVOKED = "11111111-2222-4333-8444-555555555555"  # registered, then deleted
STRANGER = "99999999-8888-4777-8666-555555555555"  # never registered
BRIDGE = "vts-bridge-makapix"
MIN_REPORTS = 10_000
# Reports per example: every topic with every payload, then the focused ones.
TOPICS, PAYLOADS, FOCUSED = 2, 3, 8
EXAMPLES = 850
ACK_FIELDS = {"post_id", "timestamp", "success", "counted", "error_code", "error", "retry_after"}
ERROR_CODES = {None, "rate_limited", "not_found", "invalid", "unregistered", "internal_error"}
KEY = "\x00key\x00"  # stands for the topic's key in a payload or a client id

# ---- values --------------------------------------------------------------------------------

NAUGHTY = [
    "", " ", "\t", "\x00", "\u200b", "\u202e", "\ufeff", "💥", "👩🏽‍🎨", "é", "e\u0301", "²", "①",
    "١٢٣", "１２３", "NaN", "Infinity", "-0", "1e999", "null", "true", "[]", "{}", "%s%n",
    "../../etc/passwd", "a\nb", '"', "\\", "x" * 300, "9" * 5000,
]
junk = st.one_of(st.sampled_from(NAUGHTY), st.text(max_size=10),
                 st.text(min_size=1, max_size=3).map(lambda s: s * 40))
# A JSON payload may escape half a surrogate pair ("\ud800"): the rule's parser gives a str
# that no UTF-8 encoder takes. (An MQTT topic or client id cannot carry one.)
LONE_SURROGATES = ["\ud800", "a\udfffb", "\udbff\udbff"]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), junk,
    st.sampled_from(LONE_SURROGATES),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(NAUGHTY), inner, max_size=3)
    ),
    max_leaves=6,
)


def anything(*plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: mostly plausible, else any JSON value (of every type)."""
    return st.one_of(*plausible, *plausible, json_scalars, json_values)


ZONES = sorted(zoneinfo.available_timezones())
ZONE_FOLDERS = sorted({z.rsplit("/", n)[0] for z in ZONES for n in (1, 2) if "/" in z})
offsets = st.integers(-(24 * 3600 - 1), 24 * 3600 - 1).map(lambda s: timezone(timedelta(seconds=s)))
_STAMPS = [
        "2026-11-24T10:00:00Z", "1970-01-01T00:00:00Z", "2000-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z",
        "2026-11-24T10:00:00+24:00", "2026-11-24T25:00:00Z", "2026-02-30T00:00:00Z",
        "2026-11-24", "2026-W48-2", "20261124T100000Z", "2026-11-24T10:00:00.123456789Z",
        "2026-11-24 10:00:00", "2026-11-24T10:00:00z", "+2026-11-24T10:00:00Z", "",
]
timestamps = st.one_of(
    st.sampled_from(_STAMPS),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), offsets)).map(
        lambda d: d.isoformat()
    ),
    junk,
)
zones = st.one_of(st.sampled_from([*ZONE_FOLDERS, "", "Etc", "__pycache__", "../x", "."]),
                  st.sampled_from(ZONES), junk)
keys_in_payload = st.one_of(
    st.just(KEY), st.just(KEY),
    st.sampled_from([PLAYER, OTHER, PLAYER.upper(), PLAYER.replace("-", ""), "", "+"]),
    st.uuids().map(str),
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "post_id": anything(st.sampled_from([123, 7, 404, "123", 123.0, 0, -1, 2**63, 2**64, True,
                                         "١٢٣", "１２３", 1e300, float("inf"), float("nan")])),
    "timestamp": anything(timestamps),
    "timezone": anything(zones),
    "intent": anything(st.sampled_from(["artwork", "intentional", "channel", "automated",
                                        "ARTWORK", "view", ""])),
    "play_order": anything(st.sampled_from([0, 1, 2, 3, -1, 1.0, 1.5, "1", True])),
    "channel": anything(st.sampled_from(["all", "reactions", "hashtag", "named", "by_user",
                                         "sdcard", "New Channel!", "x" * 64, "x" * 65])),
    "player_key": anything(keys_in_payload),
    "channel_user_sqid": anything(st.sampled_from(["k3Jx9", "x" * 256, "x" * 257])),
    "channel_hashtag": anything(st.sampled_from(["pixelart", "#art", "x" * 257])),
    "request_ack": anything(st.sampled_from([True, False, "true", 1, 0])),
    "playlist_id": anything(st.sampled_from(["p1", "", "p" * 64, "p" * 65])),
}
extra_fields = st.dictionaries(
    st.one_of(st.sampled_from(["extra", "version", "__proto__", "Post_id", "post_id ",
                               "topic_player_key", "client_id", "received_at"]), junk),
    json_values,
    max_size=2,
)
topic_keys = st.one_of(
    st.sampled_from([PLAYER, PLAYER, OTHER, REVOKED, STRANGER]),
    st.sampled_from([PLAYER.upper(), PLAYER.replace("-", ""), "{" + PLAYER + "}",
                     "urn:uuid:" + PLAYER, " " + PLAYER, "", "+", "#", "💥"]),
    st.uuids().map(str),
    junk.map(lambda s: s.replace("/", "")),
)
topics = st.one_of(
    topic_keys.map(lambda key: f"makapix/player/{key}/view"),
    topic_keys.map(lambda key: f"makapix/player/{key}/view"),
    st.sampled_from(["makapix/player//view", "makapix/player/a/b/view", "makapix/player/view",
                     f"makapix/player/{PLAYER}/view/ack", f"makapix/player/{PLAYER}/view/",
                     f"/makapix/player/{PLAYER}/view", f"MAKAPIX/player/{PLAYER}/view"]),
    junk,
)
client_ids = st.one_of(
    st.sampled_from([f"p3a-{KEY}", f"p3a-{KEY}", KEY, BRIDGE]),
    st.sampled_from([None, "", "p3a-", f"p3a-{OTHER}", f"p3a-{PLAYER.upper()}", BRIDGE + " ",
                     "vts-bridge"]),
    junk,
)
received = st.one_of(
    st.integers(0, 10**7).map(lambda ms: RECEIVED_MS + ms),
    st.sampled_from([0, -1, 2**48 - 1, 2**48, 2**63 - 1, 2**63, -(2**63), 2**70, 10**30]),
)
# Seconds between reports: the same instant, within the rate, past it, days later.
gaps = st.sampled_from([0.0, 0.0, 0.5, 5.0, 5.0, 61.0, 3600.0, 86_400.0])


def _bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN and Infinity: the rule reads them


raw_payloads = st.sampled_from([
    b"", b" ", b"{", b"[]", b"null", b"123", b'"x"', b"\xff\xfe", b"\xef\xbb\xbf{}",
    b'{"post_id": 123,}', "{}".encode("utf-16"), b"[" * 5000, b'{"a":' * 5000,
])


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any] | bytes:
    """A payload's fields (the topic's key still to fill in), or raw bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(raw_payloads)
    fields = draw(st.fixed_dictionaries({}, optional=FIELDS))
    fields.update(draw(extra_fields) if kind == 1 else {})
    return fields


# ---- focused reports: a firmware report the handler accepts, with one part made bad ----------

FIRMWARE = load_event("p3a_channel_reactions")
# Extreme instants near both ends of datetime, in every offset's direction.
_EDGES = [f"{day}T{clock}{offset}" for day, clock in [("9999-12-31", "23:59:59"),
                                                    ("0001-01-01", "00:00:00")]
          for offset in ("Z", "+00:01", "-00:01", "+14:00", "-12:00", "+23:59", "-23:59")]
POOLS: dict[str, list[Any]] = {  # per field: values worth trying every run
    "timestamp": [*_STAMPS, *_EDGES],
    "timezone": [*ZONE_FOLDERS, "", "Etc", "__pycache__", "../x", ".", *ZONES[::40]],
    "post_id": [123, "123", 123.0, 0, -1, 2**63, True, "١٢٣", "²", 1e300, float("inf"),
                float("nan"), None, [], {}],
    "play_order": [0, 2, 3, -1, True, 1.5, "1", None, 2**64],
    "request_ack": [True, False, None, "true", 1, 0, 0.5, [], "yes"],
}
FIRMWARE_VIEW = load_event("p3a_artwork_ack")


@dataclass(frozen=True)
class Report:
    topic: str
    payload: dict[str, Any] | bytes
    client_id: str | None
    received_at: int
    gap_s: float
    redeliver: bool = False  # Lambda's retry: the same event again


@st.composite
def focused(draw: st.DrawFn) -> Report:
    payload = dict(draw(st.sampled_from([FIRMWARE, FIRMWARE_VIEW])))
    payload["player_key"] = KEY
    payload["post_id"] = draw(st.sampled_from([123, 123, 7]))
    key = draw(st.sampled_from([PLAYER, PLAYER, PLAYER, OTHER, REVOKED, STRANGER]))
    client: str | None = f"p3a-{KEY}"
    at = RECEIVED_MS + draw(st.integers(0, 10**7))
    part = draw(st.sampled_from(["field", "field", "field", "missing", "extra", "client",
                                 "received", "none"]))
    # Half the values come from the pools of known-nasty ones, picked with a Random that
    # Hypothesis seeds: its own choices repeat themselves too much to reach each of them.
    rnd = draw(st.randoms(use_true_random=True))
    if part == "field":
        for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3,
                                  unique=True)):
            pool = POOLS.get(name, NAUGHTY)
            payload[name] = rnd.choice(pool) if rnd.random() < 0.5 else draw(FIELDS[name])
    elif part == "missing":
        for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, unique=True)):
            payload.pop(name, None)
    elif part == "extra":
        payload.update(draw(extra_fields))
    elif part == "client":
        client = draw(client_ids)
    elif part == "received":
        at = draw(received)
    return Report(f"makapix/player/{key}/view", payload, client, at, draw(gaps),
                  draw(st.integers(0, 9)) == 0)


# ---- the harness ---------------------------------------------------------------------------


@dataclass
class Tally:
    reports: int = 0  # reports the handler got
    skipped: Counter[str] = field(default_factory=Counter)  # what IoT would not invoke for
    outcomes: Counter[str] = field(default_factory=Counter)
    acks: int = 0
    escaped: int = 0
    logged: list[str] = field(default_factory=list)


class WarningLog(logging.Handler):
    """Every WARNING record: a lost ack and an unexpected error both log one."""

    def __init__(self, tally: Tally) -> None:
        super().__init__(logging.WARNING)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        self.tally.logged.append(f"{record.name}: {record.getMessage()}")


def seeded_services() -> Services:
    services = memory_services(Settings(drop_flush_s=60), clock=FixedClock(AT))
    services.acks = MemoryAckPublisher()
    services.posts.register(123, "artist-1")
    services.posts.register(7, "owner-1")  # the frame owner's own post
    services.players.register(PLAYER, "owner-1", "BR", "America/Sao_Paulo")
    services.players.register(OTHER, "owner-2")
    services.players.register(REVOKED, "owner-3")
    services.players.delete(REVOKED)
    return services


def topic_key(topic: str) -> str:
    levels = topic.split("/")
    return levels[2] if len(levels) > 2 else ""


def _fill(value: Any, key: str) -> Any:
    return value.replace(KEY, key) if isinstance(value, str) else value


def event_of(report: Report) -> tuple[str, dict[str, Any] | None]:
    """What the rule does with the report: ("invoke", event), or why IoT would skip it."""
    if not RULE.matches(report.topic):
        return "no_match", None
    key = topic_key(report.topic)
    raw = report.payload
    if isinstance(raw, dict):
        raw = _bytes({name: _fill(value, key) for name, value in raw.items()})
    try:
        kind, event = RULE.apply(report.topic, raw, _fill(report.client_id, key),
                                 report.received_at)
    except RecursionError:
        return "too_deep", None  # IoT Core's own JSON parser refuses such nesting
    return kind, event


def check_ack(ack: dict[str, Any]) -> None:
    assert set(ack) == ACK_FIELDS, ack
    json.dumps(ack, allow_nan=False)  # what the firmware parses: strict JSON
    assert isinstance(ack["success"], bool) and isinstance(ack["counted"], bool), ack
    assert ack["error_code"] in ERROR_CODES, ack
    assert ack["post_id"] is None or type(ack["post_id"]) is int, ack
    assert ack["timestamp"] is None or isinstance(ack["timestamp"], str), ack
    assert ack["retry_after"] is None or type(ack["retry_after"]) is int, ack


@pytest.fixture
def warning_log() -> Iterator[Tally]:
    tally = Tally()
    handler = WarningLog(tally)
    logging.getLogger().addHandler(handler)
    try:
        yield tally
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.mark.slow
def test_generated_reports_never_raise(warning_log: Tally) -> None:
    tally = warning_log
    services = seeded_services()
    clock, acks = services.clock, services.acks
    assert isinstance(clock, FixedClock) and isinstance(acks, MemoryAckPublisher)

    def handle(report: Report) -> None:
        kind, event = event_of(report)
        if kind != "invoke" or event is None:
            tally.skipped[kind] += 1
            return
        clock.advance(report.gap_s)
        logged = len(tally.logged)
        for _ in range(2 if report.redeliver else 1):
            try:
                result = services.player_views.record(json.loads(json.dumps(event)))
            except Exception:
                tally.escaped += 1
                raise
            tally.reports += 1
            assert isinstance(result, dict), result
            assert result["outcome"] in OUTCOMES, (event, result)
            assert isinstance(result["counted"], bool) and isinstance(result["acked"], bool)
            tally.outcomes[result["outcome"]] += 1
        sent, acks.sent[:] = list(acks.sent), []
        for _topic, ack in sent:
            check_ack(ack)
        tally.acks += len(sent)
        assert len(tally.logged) == logged, (event, tally.logged[logged:][:3])

    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        where=st.lists(st.tuples(topics, client_ids, received), min_size=TOPICS, max_size=TOPICS),
        what=st.lists(st.tuples(payloads(), gaps), min_size=PAYLOADS, max_size=PAYLOADS),
        aimed=st.lists(focused(), min_size=FOCUSED, max_size=FOCUSED),
    )
    def run(
        where: list[tuple[str, str | None, int]],
        what: list[tuple[dict[str, Any] | bytes, float]],
        aimed: list[Report],
    ) -> None:
        # Every payload on every topic (several reports for each value drawn), then the
        # focused ones.
        for (topic, client, at), (payload, gap) in itertools.product(where, what):
            handle(Report(topic, payload, client, at, gap))
        for report in aimed:
            handle(report)

    started = time.perf_counter()
    run()
    services.drops.flush()
    elapsed = time.perf_counter() - started
    print(
        f"\nMQTT fuzz: {tally.reports} reports handled in {elapsed:.1f} s "
        f"({sum(tally.skipped.values())} more skipped as IoT would: {dict(tally.skipped)}); "
        f"escaped exceptions: {tally.escaped}, acks: {tally.acks}, "
        f"outcomes: {dict(sorted(tally.outcomes.items()))}"
    )
    assert tally.reports >= MIN_REPORTS
    assert tally.escaped == 0 and not tally.logged
    # The fuzz reached every step of the pipeline, not only the parser.
    assert {"counted", "impression", "player_invalid", "player_unregistered",
            "player_client_mismatch", "player_key_mismatch", "player_rate_limited"} <= set(
        tally.outcomes
    ), tally.outcomes


def test_known_bad_reports_are_dropped_not_raised() -> None:
    """The causes found by hand before the fuzz (issue 13): from any key, even unregistered."""
    services = seeded_services()
    for key in (PLAYER, STRANGER):
        for stamp in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
            payload = {**FIRMWARE_VIEW, "post_id": 123, "player_key": key, "timestamp": stamp}
            kind, event = RULE.apply(f"makapix/player/{key}/view", _bytes(payload), f"p3a-{key}",
                                     RECEIVED_MS)
            assert kind == "invoke" and event is not None
            services.clock.advance(10)  # type: ignore[attr-defined]
            result = services.player_views.record(event)
            assert result["outcome"] in ("counted", "player_duplicate", "player_unregistered")
    assert uuid.UUID(PLAYER)  # the keys above are real UUIDs
