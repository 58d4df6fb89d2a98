"""The player gate: the DESIGN §4 rules exactly as the separate marker and slot kept them, for
fewer writes. Decisions are checked against a model of the rules; write counts go through the
pipeline over the memory fakes with a counting registry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.players.acks import MemoryAckPublisher
from chalicelib.players.gate import ReportGate, Verdict
from chalicelib.storage.memory import MemoryEventStore, MemoryRegistry
from chalicelib.storage.ports import Admission, GateClaim
from chalicelib.wiring import Services, memory_services
from tests.players_support import PLAYER, firmware_payload, rule_event

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
OWNER, ARTIST = "user-7", "artist-1"


class CountingRegistry(MemoryRegistry):
    """The memory registry, counting its writes by kind (a refused conditional write too)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: Counter[str] = Counter()
        self.reads = 0

    def take_slot(self, *args: Any, **kwargs: Any) -> float | None:
        self.writes["slot"] += 1
        return super().take_slot(*args, **kwargs)

    def mark_once(self, *args: Any, **kwargs: Any) -> bool:
        self.writes["marker"] += 1
        return super().mark_once(*args, **kwargs)

    def admit(self, claim: GateClaim, *, unless_marked: bool = True) -> Admission:
        self.writes["gate"] += 1
        return super().admit(claim, unless_marked=unless_marked)

    def note_marked(self, claim: GateClaim, until_ms: int) -> Admission:
        self.writes["note"] += 1
        return super().note_marked(claim, until_ms)

    def peek_gate(self, claim: GateClaim) -> Admission:
        self.reads += 1
        return super().peek_gate(claim)

    def take(self) -> dict[str, int]:
        """The writes (and, as ``read``, the reads) since the last call."""
        counts, self.writes = dict(self.writes), Counter()
        if self.reads:
            counts["read"], self.reads = self.reads, 0
        return counts


# ---- the rules, as a model ----------------------------------------------------------------


class Rules:
    """DESIGN §4 as the separate seen-once marker and rate slot decided it."""

    def __init__(self, interval_s: int, window_s: int) -> None:
        self.interval_ms, self.window_ms = interval_s * 1000, window_s * 1000
        self.markers: dict[str, tuple[int, str | None]] = {}
        self.slot: tuple[int, str | None] = (0, None)

    def check(self, message: str, now_ms: int, token: str | None) -> Verdict:
        held = self.markers.get(message)
        if held and held[0] > now_ms and (token is None or held[1] != token):
            return Verdict("retransmission")
        self.markers[message] = (now_ms + self.window_ms, token)
        until, holder = self.slot
        if until > now_ms and (token is None or holder != token):
            return Verdict("rate_limited", (until - now_ms) / 1000)
        self.slot = (now_ms + self.interval_ms, token)
        return Verdict("admitted")


# (interval, window): the defaults, small rings, no window, and settings the ring cannot serve.
SETTINGS = [(5, 60), (3, 7), (2, 30), (1, 0), (5, 5), (1, 30), (0, 60)]

reports = st.lists(
    st.tuples(
        st.integers(0, 7_000),  # ms since the previous report
        st.integers(0, 3),  # post
        st.sampled_from(["2026-11-24T10:00:00Z", "2026-11-24T10:00:05Z", None]),
        st.integers(-1, 6),  # -1: a redelivery of an earlier event; 0: no token; else a new one
    ),
    min_size=1,
    max_size=60,
)


@pytest.mark.parametrize(("interval_s", "window_s"), SETTINGS)
@settings(max_examples=150, deadline=None, database=None)
@given(steps=reports)
def test_the_gate_decides_as_the_rules_do(
    interval_s: int, window_s: int, steps: list[tuple[int, int, str | None, int]]
) -> None:
    gate, rules = ReportGate(MemoryRegistry(), interval_s, window_s), Rules(interval_s, window_s)
    now = START
    sent: list[tuple[int, str | None, str | None]] = []
    for n, (gap_ms, post, timestamp, kind) in enumerate(steps):
        now += timedelta(milliseconds=gap_ms)
        if kind == -1 and sent:  # a Lambda retry: the very same event, the same token
            post, timestamp, token = sent[n * 7919 % len(sent)]
        else:
            token = None if kind == 0 else f"evt-{n}"
        sent.append((post, timestamp, token))
        message = f"{post}#{timestamp or '-'}"
        got = gate.check(PLAYER, post, timestamp, now, token)
        want = rules.check(message, int(now.timestamp() * 1000), token)
        assert got.kind == want.kind, (n, got, want)
        if want.wait_s is not None:
            assert got.wait_s == pytest.approx(want.wait_s)


# ---- write counts through the pipeline ---------------------------------------------------


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def services(clock: FixedClock) -> Iterator[Services]:
    services = memory_services(Settings(drop_flush_s=0), clock=clock)
    services.registry = CountingRegistry()
    services.acks = MemoryAckPublisher()
    for post_id in (123, 124, 125):
        services.posts.register(post_id, ARTIST)
    services.players.register(PLAYER, OWNER)
    yield services


def send(services: Services, **changes: Any) -> str:
    event = changes.pop("event", None) or rule_event(firmware_payload(**changes))
    return str(services.player_views.record(event)["outcome"])


def writes(services: Services) -> dict[str, int]:
    registry = services.registry
    assert isinstance(registry, CountingRegistry)
    events = services.events
    assert isinstance(events, MemoryEventStore)
    counts = registry.take()
    if events.writes:
        counts["event"] = events.writes
        events.writes = 0
    return counts


def test_an_accepted_report_is_one_gate_write_and_its_event(services: Services) -> None:
    # Before: a marker, a slot and the event (3 writes).
    assert send(services, intent="channel") == "impression"
    assert writes(services) == {"gate": 1, "event": 1}


def test_a_repeated_view_costs_the_gate_only(services: Services, clock: FixedClock) -> None:
    # The firmware repeats a View every 30 s while the artwork stays: counted once, and the
    # container remembers the stored View, so the repeat writes no refused View.
    assert send(services, intent="artwork") == "counted"
    assert writes(services) == {"gate": 1, "event": 1}
    clock.advance(30)
    assert send(services, intent="artwork", timestamp="2026-11-24T10:00:30Z") == "player_duplicate"
    assert writes(services) == {"gate": 1}


def test_a_retransmission_is_one_refused_write(services: Services, clock: FixedClock) -> None:
    payload = firmware_payload(intent="channel")
    send(services, event=rule_event(payload))
    writes(services)
    clock.advance(6)  # the slot is free again: the retransmission must not take it
    assert send(services, event=rule_event(payload)) == "player_retransmission"
    assert writes(services) == {"gate": 1}
    assert send(services, post_id=124, timestamp="2026-11-24T10:00:06Z") == "impression"


def test_a_rate_limited_report_still_gets_its_marker(services: Services, clock: FixedClock) -> None:
    send(services)
    writes(services)
    limited = firmware_payload(post_id=124, timestamp="2026-11-24T10:00:01Z")
    clock.advance(1)
    assert send(services, event=rule_event(limited)) == "player_rate_limited"
    assert writes(services) == {"gate": 1, "note": 1, "marker": 1}  # the gate notes it once
    # The container now knows markers may be live: it reads the gate instead of trying it.
    clock.advance(1)
    assert send(services, post_id=125, timestamp="2026-11-24T10:00:02Z") == "player_rate_limited"
    assert writes(services) == {"read": 1, "marker": 1}
    # Its retransmission once the slot is free: dropped as one, the slot left alone.
    clock.advance(4)
    assert send(services, event=rule_event(limited)) == "player_retransmission"
    assert writes(services) == {"read": 1, "marker": 1}
    fresh = firmware_payload(post_id=123, timestamp="2026-11-24T10:00:06Z")
    assert send(services, event=rule_event(fresh)) == "impression"
    # While refused reports' markers may live, the report's own marker comes first.
    assert writes(services) == {"read": 1, "marker": 1, "gate": 1, "event": 1}


def test_a_container_meeting_live_markers_learns_them(
    services: Services, clock: FixedClock
) -> None:
    send(services)
    clock.advance(1)
    assert send(services, post_id=124, timestamp="2026-11-24T10:00:01Z") == "player_rate_limited"
    writes(services)
    # Another container (its own memory, the same store) gets the next report.
    other = memory_services(Settings(drop_flush_s=0), clock=clock)
    other.registry, other.events = services.registry, services.events
    other.posts.register(125, ARTIST)
    other.players.register(PLAYER, OWNER)
    writes(services)
    clock.advance(5)
    payload = firmware_payload(post_id=125, timestamp="2026-11-24T10:00:06Z")
    assert send(other, event=rule_event(payload)) == "impression"
    assert writes(services) == {"gate": 2, "marker": 1, "event": 1}  # a refused try first
    clock.advance(5)
    payload = firmware_payload(post_id=123, timestamp="2026-11-24T10:00:11Z")
    assert send(other, event=rule_event(payload)) == "impression"
    assert writes(services) == {"read": 1, "marker": 1, "gate": 1, "event": 1}
    clock.advance(121)  # the markers are past: one write again
    payload = firmware_payload(post_id=124, timestamp="2026-11-24T10:02:12Z")
    assert send(other, event=rule_event(payload)) == "impression"
    assert writes(services) == {"gate": 1, "event": 1}


def test_settings_a_ring_cannot_serve_keep_marker_and_slot(clock: FixedClock) -> None:
    services = memory_services(Settings(player_interval_s=0), clock=clock)
    services.registry = CountingRegistry()
    services.posts.register(123, ARTIST)
    services.players.register(PLAYER, OWNER)
    assert send(services) == "impression"
    assert writes(services) == {"marker": 1, "slot": 1, "event": 1}


# ---- two copies of one report racing on two containers ------------------------------------


class Interleaving(MemoryRegistry):
    """Runs ``cut_in`` (another container's whole check, on the same store) just before the
    n-th registry call: every point at which the two containers could interleave."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.cut_at: int | None = None
        self.cut_in: Any = None

    def _step(self) -> None:
        if self.calls == self.cut_at and self.cut_in is not None:
            cut_in, self.cut_in = self.cut_in, None
            cut_in()
        self.calls += 1

    def mark_once(self, *args: Any, **kwargs: Any) -> bool:
        self._step()
        return super().mark_once(*args, **kwargs)

    def admit(self, claim: GateClaim, *, unless_marked: bool = True) -> Admission:
        self._step()
        return super().admit(claim, unless_marked=unless_marked)

    def peek_gate(self, claim: GateClaim) -> Admission:
        self._step()
        return super().peek_gate(claim)

    def note_marked(self, claim: GateClaim, until_ms: int) -> Admission:
        self._step()
        return super().note_marked(claim, until_ms)


@pytest.mark.parametrize("slot_held", [False, True])
@pytest.mark.parametrize("marked", [False, True])
@pytest.mark.parametrize("b_later_ms", [0, 600])
@pytest.mark.parametrize("knows", [False, True])
def test_two_copies_racing_end_as_one_report_and_a_retransmission(
    slot_held: bool, marked: bool, b_later_ms: int, knows: bool
) -> None:
    def setup() -> tuple[Interleaving, ReportGate, ReportGate]:
        store = Interleaving()
        a, b = ReportGate(store, 5, 60), ReportGate(store, 5, 60)
        if slot_held:  # another report holds the slot for 0.5 s more
            assert a.check(PLAYER, 9, "t9", START - timedelta(seconds=4.5), "x").kind == "admitted"
        if marked:  # a refused report's marker may be live
            other = START - timedelta(seconds=1)
            a.check(PLAYER, 8, "t8", other - timedelta(seconds=4.9), "y0")
            assert a.check(PLAYER, 7, "t7", other, "y").kind == "rate_limited"
        if not knows:  # the containers' memories start empty
            a, b = ReportGate(store, 5, 60), ReportGate(store, 5, 60)
        store.calls = 0
        return store, a, b

    store, a, _ = setup()
    a.check(PLAYER, 1, "t1", START, "copy-a")
    steps = store.calls
    for cut_at in range(steps + 1):
        store, a, b = setup()
        verdicts: list[Verdict] = []
        later = START + timedelta(milliseconds=b_later_ms)
        store.cut_at = cut_at
        store.cut_in = lambda b=b, later=later, verdicts=verdicts: verdicts.append(
            b.check(PLAYER, 1, "t1", later, "copy-b")
        )
        verdicts.insert(0, a.check(PLAYER, 1, "t1", START, "copy-a"))
        if store.cut_in is not None:  # B after A's last call
            cut_in, store.cut_in = store.cut_in, None
            cut_in()
        kinds = sorted(v.kind for v in verdicts)
        assert len(kinds) == 2 and kinds.count("retransmission") == 1, (cut_at, kinds)
