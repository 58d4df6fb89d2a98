"""The web recording pipeline on in-memory fakes: one test per drop reason."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.auth import Claims
from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.enrich.visitor import user_visitor
from chalicelib.errors import NotFound, RateLimited, StorageUnavailable
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.ingest.web import WebHit
from chalicelib.storage.memory import MemoryDropStore, MemoryEventStore, MemoryRegistry
from chalicelib.wiring import Services, memory_services
from tests.conftest import BROWSER_UA
from tests.players_support import PLAYER, firmware_payload, rule_event
from tests.unit.test_views import FlakyEvents

SETTINGS = Settings(jwt_secret="j" * 32, visitor_key="v" * 32, drop_flush_s=0)
DAY = "2026-11-24"


@pytest.fixture
def services() -> Services:
    services = memory_services(SETTINGS, FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC)))
    services.posts.register(7, "artist-1")
    return services


def hit(
    post_id: int = 7,
    *,
    ua: str | None = BROWSER_UA,
    ip: str = "203.0.113.9",
    viewer: Claims | None = None,
    **body: object,
) -> WebHit:
    return WebHit(
        post_id=post_id,
        request=RecordViewRequest(**body),
        user_agent=ua,  # type: ignore[arg-type]
        referer_header="https://www.example.com/page",
        source_ip=ip,
        viewer=viewer,
    )


def drops(services: Services) -> dict[str, int]:
    services.drops.flush()
    return services.drop_store.get_drops([DAY])


def stored(services: Services) -> list[object]:
    return list(services.events.day_events(7, DAY))


def test_a_new_view_is_counted_and_stored_enriched(services: Services) -> None:
    outcome = services.web_recorder.record(hit(channel="hashtag"))
    assert outcome.counted
    [event] = stored(services)
    assert event.device == "desktop" and event.source == "web"  # type: ignore[attr-defined]
    assert event.referrer_domain == "example.com" and event.channel == "hashtag"  # type: ignore[attr-defined]
    assert event.owner_id == "artist-1" and not event.authenticated  # type: ignore[attr-defined]


def test_drop_duplicate_same_visitor_same_day(services: Services) -> None:
    services.web_recorder.record(hit())
    services.clock.advance(3600)  # type: ignore[attr-defined]
    outcome = services.web_recorder.record(hit())
    assert not outcome.counted and outcome.reason == "duplicate"
    assert drops(services) == {"duplicate": 1}
    assert len(stored(services)) == 1


def test_another_visitor_counts(services: Services) -> None:
    assert services.web_recorder.record(hit(ip="198.51.100.1")).counted
    assert services.web_recorder.record(hit(ip="198.51.100.2")).counted


def test_drop_bot(services: Services) -> None:
    for ua in ("Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.5.0", "", None):
        outcome = services.web_recorder.record(hit(ua=ua))
        assert not outcome.counted and outcome.reason == "bot"
    assert drops(services) == {"bot": 4}
    assert stored(services) == []


def test_drop_author_view(services: Services) -> None:
    outcome = services.web_recorder.record(hit(viewer=Claims("artist-1", "artist")))
    assert outcome.reason == "author_view"
    assert stored(services) == []
    assert drops(services) == {"author_view": 1}


def test_signed_in_viewers_are_one_visitor_on_any_device(services: Services) -> None:
    fan = Claims("fan-9", "viewer")
    assert services.web_recorder.record(hit(viewer=fan, ip="198.51.100.1")).counted
    assert not services.web_recorder.record(hit(viewer=fan, ip="192.0.2.77")).counted
    [event] = stored(services)
    assert event.visitor == user_visitor(SETTINGS.visitor_key, "fan-9")  # type: ignore[attr-defined]
    assert event.authenticated  # type: ignore[attr-defined]


def test_unknown_post_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        services.web_recorder.record(hit(post_id=999))
    assert drops(services) == {"unknown_post": 1}


@pytest.mark.parametrize("change", [{"visible": False}, {"deleted": True}])
@pytest.mark.parametrize("intent", ["view", "impression"])
def test_a_hidden_or_deleted_post_is_accepted_but_not_stored(
    services: Services, change: dict[str, bool], intent: str
) -> None:
    services.posts.register(7, "artist-1", title="Dawn", **change)
    for _ in range(2):  # an Impression takes no rate slot either
        outcome = services.web_recorder.record(hit(intent=intent))
        assert (outcome.counted, outcome.reason) == (False, "post_not_counting")
    assert stored(services) == []
    assert drops(services) == {"post_not_counting": 2}
    services.posts.register(7, "artist-1")  # visible again: counts again (no cache: re-registered)
    assert services.web_recorder.record(hit(intent=intent)).reason in ("counted", "impression")


def test_a_not_counting_post_still_drops_bots_and_gpc_first(services: Services) -> None:
    services.posts.register(7, "artist-1", visible=False)
    assert services.web_recorder.record(hit(ua="curl/8.5.0")).reason == "bot"
    assert services.web_recorder.record(hit(viewer=Claims("artist-1", "artist"))).reason == (
        "post_not_counting"
    )
    assert drops(services) == {"bot": 1, "post_not_counting": 1}


def test_impressions_are_stored_each_time_but_rate_limited(services: Services) -> None:
    recorder = services.web_recorder
    assert recorder.record(hit(intent="impression")).reason == "impression"
    services.clock.advance(1)  # type: ignore[attr-defined]
    with pytest.raises(RateLimited) as caught:
        recorder.record(hit(intent="impression"))
    assert caught.value.retry_after_s == 2
    services.clock.advance(2)  # type: ignore[attr-defined]
    assert recorder.record(hit(intent="impression")).reason == "impression"
    assert [e.intent for e in stored(services)] == ["impression", "impression"]  # type: ignore[attr-defined]
    assert drops(services) == {"rate_limited": 1}


def test_impressions_never_block_views(services: Services) -> None:
    services.web_recorder.record(hit(intent="impression"))
    assert services.web_recorder.record(hit()).counted


def test_nothing_identifying_is_stored(services: Services) -> None:
    services.web_recorder.record(hit(ip="203.0.113.200"))
    events = services.events
    assert isinstance(events, MemoryEventStore)
    blob = repr(events.items)
    assert "203.0.113.200" not in blob and "Chrome/131" not in blob


def test_every_outcome_is_also_an_emf_metric() -> None:
    import io
    import json

    from chalicelib.drops import DropCounter
    from chalicelib.metrics import stdout_sink
    from chalicelib.storage.memory import MemoryDropStore

    out = io.StringIO()
    clock = FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC))
    counter = DropCounter(MemoryDropStore(), clock, 0, stdout_sink("test", out))
    counter.count("bot")
    counter.accepted(counted=True)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["drop_bot"] == 1 and first["Stage"] == "test"
    assert first["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "drop_bot", "Unit": "Count"}
    ]
    assert (second["accepted"], second["counted"]) == (1, 1)


# ---- what the container remembers saves writes, never changes an answer --------------------


class CountingRegistry(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.slot_writes = 0

    def take_slot(self, *args: Any, **kwargs: Any) -> float | None:
        self.slot_writes += 1  # a refused conditional write is charged too
        return super().take_slot(*args, **kwargs)


class CountingDropStore(MemoryDropStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.fail = False

    def add_drops(self, day: str, counts: Mapping[str, int]) -> None:
        if self.fail:
            raise StorageUnavailable("DynamoDB answered ThrottlingException")
        self.writes += 1
        super().add_drops(day, counts)


def event_writes(services: Services) -> int:
    events = services.events
    assert isinstance(events, MemoryEventStore)
    return events.writes


def test_a_view_the_store_confirmed_is_not_written_again(services: Services) -> None:
    recorder = services.web_recorder
    assert recorder.record(hit()).counted
    for _ in range(5):
        services.clock.advance(600)  # type: ignore[attr-defined]
        assert recorder.record(hit()).reason == "duplicate"
    assert event_writes(services) == 1  # before: 6 (5 conditional puts refused, still charged)
    assert drops(services) == {"duplicate": 5}
    # Another Visitor, or the next Day, is a new key: written.
    assert recorder.record(hit(ip="198.51.100.7")).counted
    services.clock.advance(86_400)  # type: ignore[attr-defined]
    assert recorder.record(hit()).counted
    assert event_writes(services) == 3


def test_a_view_another_container_stored_costs_one_refused_write() -> None:
    first = memory_services(SETTINGS, FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC)))
    first.posts.register(7, "artist-1")
    second = memory_services(SETTINGS, first.clock)
    second.events, second.registry = first.events, first.registry  # one store, two containers
    assert first.web_recorder.record(hit()).counted
    assert second.web_recorder.record(hit()).reason == "duplicate"
    assert second.web_recorder.record(hit()).reason == "duplicate"
    assert event_writes(first) == 2  # the first put, and the second container's one refusal


def test_a_view_the_store_did_not_answer_is_not_remembered() -> None:
    services = memory_services(SETTINGS, FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC)))
    events = FlakyEvents()
    services.events = events
    services.posts.register(7, "artist-1")
    events.fail = True
    with pytest.raises(StorageUnavailable):
        services.web_recorder.record(hit())
    events.fail = False
    assert services.web_recorder.record(hit()).counted  # the retry is written and counted


def test_players_and_web_share_what_the_store_confirmed(services: Services) -> None:
    # An owner's web View and their frame's View of one post on one Day are one Visitor's.
    services.players.register(PLAYER, "fan-9")
    assert services.web_recorder.record(hit(viewer=Claims("fan-9", "viewer"))).counted
    report = rule_event(firmware_payload(intent="artwork", post_id=7))
    assert services.player_views.record(report)["outcome"] == "player_duplicate"
    assert event_writes(services) == 1


def test_an_impression_slot_known_taken_answers_429_without_a_write() -> None:
    services = memory_services(SETTINGS, FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC)))
    registry = CountingRegistry()
    services.registry = registry
    services.posts.register(7, "artist-1")
    recorder = services.web_recorder
    assert recorder.record(hit(intent="impression")).reason == "impression"
    assert registry.slot_writes == 1
    for waited, retry_after in ((0.5, 3), (1.2, 2), (1.0, 1)):
        services.clock.advance(waited)  # type: ignore[attr-defined]
        with pytest.raises(RateLimited) as caught:
            recorder.record(hit(intent="impression"))
        assert caught.value.retry_after_s == retry_after
    assert registry.slot_writes == 1  # before: 4
    services.clock.advance(0.3)  # type: ignore[attr-defined]
    assert recorder.record(hit(intent="impression")).reason == "impression"  # a new slot
    assert registry.slot_writes == 2
    assert drops(services) == {"rate_limited": 3}


def test_a_slot_another_container_holds_is_learned_from_its_refusal() -> None:
    clock = FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC))
    services = memory_services(SETTINGS, clock)
    registry = CountingRegistry()
    services.registry = registry
    services.posts.register(7, "artist-1")
    other = memory_services(SETTINGS, clock)
    other.events, other.registry = services.events, registry
    assert other.web_recorder.record(hit(intent="impression")).reason == "impression"
    clock.advance(1)
    retry_afters = []
    for _ in range(3):
        with pytest.raises(RateLimited) as caught:
            services.web_recorder.record(hit(intent="impression"))
        retry_afters.append(caught.value.retry_after_s)
    assert retry_afters == [2, 2, 2]
    assert registry.slot_writes == 2  # the other's claim, and this container's one refusal


def test_drop_counters_are_written_at_most_once_per_flush_period() -> None:
    clock = FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC))
    services = memory_services(
        Settings(jwt_secret="j" * 32, visitor_key="v" * 32, drop_flush_s=60), clock
    )
    store = CountingDropStore()
    services.drop_store = store
    services.posts.register(7, "artist-1")
    for n in range(30):  # a bot every second for half a minute
        services.web_recorder.record(hit(ua="curl/8.5.0", ip=f"198.51.100.{n}"))
        clock.advance(1)
    assert store.writes == 0  # before (flush every request): 30
    clock.advance(30)
    assert services.web_recorder.record(hit()).counted  # any request flushes when due
    assert store.writes == 1
    assert services.drop_store.get_drops([DAY]) == {"bot": 30}


def test_drop_counters_every_request_with_zero() -> None:
    services = memory_services(SETTINGS, FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC)))
    store = CountingDropStore()
    services.drop_store = store
    services.posts.register(7, "artist-1")
    for _ in range(3):
        services.web_recorder.record(hit(ua="curl/8.5.0"))
    assert store.writes == 3


def test_a_failed_flush_keeps_the_counts_and_the_answer() -> None:
    clock = FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC))
    services = memory_services(SETTINGS, clock)
    store = CountingDropStore()
    services.drop_store = store
    services.posts.register(7, "artist-1")
    store.fail = True
    assert services.web_recorder.record(hit(ua="curl/8.5.0")).reason == "bot"
    store.fail = False
    assert drops(services) == {"bot": 1}
