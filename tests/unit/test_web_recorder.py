"""The web recording pipeline on in-memory fakes: one test per drop reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.auth import Claims
from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.errors import NotFound, RateLimited
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.ingest.web import WebHit
from chalicelib.storage.memory import MemoryEventStore
from chalicelib.wiring import Services, memory_services
from tests.conftest import BROWSER_UA

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
    assert event.visitor == "u:fan-9" and event.authenticated  # type: ignore[attr-defined]


def test_unknown_post_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        services.web_recorder.record(hit(post_id=999))
    assert drops(services) == {"unknown_post": 1}


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

    from chalicelib.ingest.drops import DropCounter
    from chalicelib.metrics import stdout_sink
    from chalicelib.storage.memory import MemoryDropStore

    out = io.StringIO()
    clock = FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC))
    counter = DropCounter(MemoryDropStore(), clock, 0, stdout_sink("test", out))
    counter.count("bot")
    counter.accepted(counted=True)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["drop_bot"] == 1 and first["Stage"] == "test"
    assert first["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "drop_bot", "Unit": "Count"}]
    assert (second["accepted"], second["counted"]) == (1, 1)
