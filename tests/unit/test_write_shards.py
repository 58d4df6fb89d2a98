"""Write shards of hot posts (docs/adr/0016): the shard of a Visitor, hot detection and its
mark, the recorders' placement and throttle fallback, and the close merging a Day's keys."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.clock import FixedClock
from chalicelib.config import Settings, get_settings
from chalicelib.counts import Target
from chalicelib.errors import ConfigError, StorageThrottled, StorageUnavailable
from chalicelib.known import KnownViews
from chalicelib.model import HotMark, PostRecord, ViewEvent
from chalicelib.registry.posts import PostDetails, PostDirectory
from chalicelib.rollup.close import DayCloser
from chalicelib.rollup.hot import HotPosts, batch_rates
from chalicelib.storage import keys
from chalicelib.storage.dynamodb import guarded
from chalicelib.storage.memory import MemoryEventStore, MemoryRegistry
from chalicelib.views import ViewKeeper
from chalicelib.wiring import Services, memory_services
from tests.unit.rollupkit import AT, batch, look

DAY = "2026-11-24"
END_OF_NEXT_DAY = datetime(2026, 11, 26, tzinfo=UTC)


# ---- keys: a Visitor always has the same shard -------------------------------------------


def test_a_visitor_always_maps_to_the_same_shard_and_visitors_spread() -> None:
    assert keys.write_shard("h:fan", 10) == keys.write_shard("h:fan", 10)
    spread = Counter(keys.write_shard(f"h:{n:08x}", 10) for n in range(20_000))
    assert sorted(spread) == list(range(1, 11))
    assert all(1_800 < n < 2_200 for n in spread.values())  # 2,000 each, within 10%


def test_event_keys_name_their_shard() -> None:
    assert keys.event_pk(7, DAY) == "P#7#2026-11-24"
    assert keys.event_pk(7, DAY, 3) == "P#7#2026-11-24#s3"
    assert keys.event_shard("P#7#2026-11-24") is None
    assert keys.event_shard("P#7#2026-11-24#s3") == 3
    for bad in ("POST#7#META", "P#7", "P#7#2026-11-24#x3", "P#7#2026-11-24#s"):
        with pytest.raises(ValueError):
            keys.event_shard(bad)


def test_a_throttled_request_is_told_apart_from_other_faults() -> None:
    def fail(code: str) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "..."}}, "PutItem")

    for code in ("ProvisionedThroughputExceededException", "ThrottlingException"):
        with pytest.raises(StorageThrottled):
            guarded(partial(fail, code))
    with pytest.raises(StorageUnavailable) as caught:
        guarded(lambda: fail("InternalServerError"))
    assert not isinstance(caught.value, StorageThrottled)


def test_the_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VTS_HOT_SHARDS", raising=False)
    monkeypatch.delenv("VTS_HOT_VIEWS_PER_S", raising=False)
    assert (get_settings().hot_views_per_s, get_settings().hot_shards) == (50, 10)
    monkeypatch.setenv("VTS_HOT_SHARDS", "500")
    with pytest.raises(ConfigError, match="VTS_HOT_SHARDS must be between 0 and 100"):
        get_settings()
    monkeypatch.setenv("VTS_HOT_SHARDS", "0")
    monkeypatch.setenv("VTS_HOT_VIEWS_PER_S", "fast")
    with pytest.raises(ConfigError, match="VTS_HOT_VIEWS_PER_S must be an integer"):
        get_settings()
    monkeypatch.setenv("VTS_HOT_VIEWS_PER_S", "0")
    assert (get_settings().hot_views_per_s, get_settings().hot_shards) == (0, 0)


# ---- hot detection --------------------------------------------------------------------------


def looks_over(post: int, n: int, span_s: float, start: datetime = AT) -> list[ViewEvent]:
    step = span_s / max(1, n - 1)
    return [
        look(post=post, visitor=f"h:{post}-{i}", occurred_at=start + timedelta(seconds=i * step))
        for i in range(n)
    ]


def test_a_batch_is_measured_by_its_looks_own_times() -> None:
    # 500 looks of post 7 and 100 of post 8 written over 10 s: 50/s and 10/s, whenever the
    # batch arrives (a backlog delivered at once is measured as it was written).
    rates = batch_rates(looks_over(7, 500, 10.0) + looks_over(8, 100, 10.0))
    assert rates == {7: pytest.approx(50.0), 8: pytest.approx(10.0)}
    # A burst within a few milliseconds is measured over at least a second.
    assert batch_rates(looks_over(7, 30, 0.005)) == {7: pytest.approx(30.0)}
    assert batch_rates([]) == {}


def hot_posts(services: Services, looks_per_s: int = 50, shards: int = 10) -> HotPosts:
    return HotPosts(
        services.aggregates,
        services.clock,
        ttl_days=35,
        registry=services.registry,
        looks_per_s=looks_per_s,
        shards=shards,
    )


@pytest.fixture
def services() -> Services:
    settings = Settings(drop_flush_s=0, jwt_secret="shards-test-secret-" * 2)
    built = memory_services(settings, clock=FixedClock(AT + timedelta(minutes=1)))
    for post_id in (7, 8):
        built.registry.put_post(PostRecord(post_id, "artist-1", AT))
    return built


def marks(services: Services) -> dict[int, HotMark]:
    registry = services.registry
    assert isinstance(registry, MemoryRegistry)
    return dict(registry.hot)


def test_a_post_past_the_threshold_is_marked_hot_until_the_end_of_the_next_day(
    services: Services,
) -> None:
    hot = hot_posts(services)
    hot.observe(looks_over(7, 490, 10.0) + looks_over(8, 10, 10.0))
    assert marks(services) == {}  # 49/s: not yet
    hot.observe(looks_over(7, 500, 10.0) + looks_over(8, 10, 10.0))
    assert marks(services) == {7: HotMark(10, END_OF_NEXT_DAY)}
    # Marked once per container and Day, not per batch.
    services.registry.hot.clear()  # type: ignore[attr-defined]
    hot.observe(looks_over(7, 500, 10.0))
    assert marks(services) == {}
    # Busy the next Day: marked again, for one more Day.
    next_day = AT + timedelta(days=1)
    services.clock.at = next_day  # type: ignore[attr-defined]
    hot.observe(looks_over(7, 500, 10.0, start=next_day))
    assert marks(services) == {7: HotMark(10, END_OF_NEXT_DAY + timedelta(days=1))}


class DownRegistry(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def mark_hot(self, post_id: int, mark: HotMark) -> None:
        if self.down:
            raise StorageUnavailable("DynamoDB answered InternalServerError")
        super().mark_hot(post_id, mark)


def test_a_mark_that_failed_is_tried_again_without_failing_the_batch(services: Services) -> None:
    services.registry = registry = DownRegistry()
    hot = hot_posts(services)
    hot.observe(looks_over(7, 500, 10.0))  # the batch goes on: its live counts are not retried
    assert registry.hot == {}
    registry.down = False
    hot.observe(looks_over(7, 500, 10.0))
    assert registry.hot == {7: HotMark(10, END_OF_NEXT_DAY)}


def test_a_backlog_of_a_day_long_past_marks_nothing(services: Services) -> None:
    services.clock.at = AT + timedelta(days=3)  # type: ignore[attr-defined]
    hot_posts(services).observe(looks_over(7, 5_000, 10.0))
    assert marks(services) == {}


def test_without_shards_or_threshold_nothing_is_marked(services: Services) -> None:
    for hot in (hot_posts(services, looks_per_s=0), hot_posts(services, shards=0)):
        hot.observe(looks_over(7, 5_000, 1.0))
    assert marks(services) == {}


def test_the_shards_a_day_used_are_noted_once_for_the_close(services: Services) -> None:
    hot = hot_posts(services)
    sharded = [replace(e, shard=keys.write_shard(e.visitor, 4)) for e in looks_over(7, 40, 5.0)]
    hot.observe(sharded + looks_over(8, 3, 5.0))
    hot.observe(sharded)
    noted = services.aggregate_items.query_range("DAY#2026-11-24", "P#", "P#~")
    assert sorted(m["sk"] for m in noted) == [f"P#7#s{n}" for n in (1, 2, 3, 4)]
    assert services.aggregates.active_posts(DAY) == {7: [1, 2, 3, 4]}


def test_a_marked_post_survives_the_registry_sync_and_expires(services: Services) -> None:
    clock = services.clock
    assert isinstance(clock, FixedClock)
    directory = PostDirectory(services.registry, clock, 0, hot_shards=10)
    services.registry.mark_hot(7, HotMark(10, END_OF_NEXT_DAY))
    services.registry.mark_hot(7, HotMark(10, END_OF_NEXT_DAY - timedelta(days=1)))  # kept
    directory.save({7: PostDetails("artist-1", title="Dawn")})  # Makapix's sync: META whole
    post = directory.get_for_recording(7)
    assert post is not None and post.title == "Dawn"
    assert post.shards_at(AT) == 10 and post.shards_at(END_OF_NEXT_DAY) == 0
    assert services.registry.get_posts([7])[7].hot is None  # registration reads carry none
    assert directory.get(7) == post  # a mark is not part of the registration


# ---- the recorders' side ----------------------------------------------------------------------


class ThrottledBase(MemoryEventStore):
    """Throttles every write on a Day's base key (a post past ~1,000 writes/s)."""

    def __init__(self, error: type[StorageUnavailable] = StorageThrottled) -> None:
        super().__init__()
        self.error = error
        self.refused = 0

    def _put(self, event: ViewEvent, *, only_new: bool) -> bool:
        if event.shard is None:
            self.refused += 1
            raise self.error("DynamoDB answered ProvisionedThroughputExceededException")
        return super()._put(event, only_new=only_new)


def fan(visitor: str = "h:fan", **changes: Any) -> ViewEvent:
    return look(visitor=visitor, **changes)


def test_a_hot_posts_looks_go_to_the_visitors_shard_and_dedup_there() -> None:
    events = MemoryEventStore()
    keeper = ViewKeeper(events, KnownViews())
    assert keeper.store(fan(), shards=10)
    assert not ViewKeeper(events, KnownViews()).store(fan(device="desktop"), shards=10)
    keeper.store_impression(fan(intent="impression", event_id="01KAT0000000000000000000AA"), 10)
    shard = keys.write_shard("h:fan", 10)
    assert [e.intent for e in events.day_events(7, DAY, shard)] == ["impression", "view"]
    assert list(events.day_events(7, DAY)) == []


def test_a_throttled_base_key_falls_back_to_the_shard_and_holds_the_post_hot() -> None:
    clock = FixedClock(AT)
    registry = MemoryRegistry()
    registry.put_post(PostRecord(7, "artist-1", AT))
    directory = PostDirectory(registry, clock, 60, monotonic=lambda: 0.0, hot_shards=8)
    events = ThrottledBase()
    keeper = ViewKeeper(events, KnownViews(), fallback=directory)
    post = directory.get_for_recording(7)
    assert post is not None and post.shards_at(AT) == 0
    assert keeper.store(fan(), post.shards_at(AT))
    [stored] = events.day_events(7, DAY, keys.write_shard("h:fan", 8))
    assert stored.visitor == "h:fan" and events.refused == 1
    # This container now holds the post hot for the rest of the Day: no more base writes.
    held = directory.get_for_recording(7)
    assert held is not None and held.shards_at(AT) == 8
    assert held.shards_at(datetime(2026, 11, 25, tzinfo=UTC)) == 0
    assert keeper.store(fan("h:other"), held.shards_at(AT)) and events.refused == 1


def test_only_a_throttle_falls_back_and_only_when_shards_are_on() -> None:
    registry = MemoryRegistry()
    registry.put_post(PostRecord(7, "artist-1", AT))
    clock = FixedClock(AT)
    off = PostDirectory(registry, clock, 60, hot_shards=0)
    with pytest.raises(StorageThrottled):
        ViewKeeper(ThrottledBase(), KnownViews(), fallback=off).store(fan())
    on = PostDirectory(registry, clock, 60, hot_shards=8)
    events = ThrottledBase(error=StorageUnavailable)  # down, not throttled: another key won't do
    with pytest.raises(StorageUnavailable):
        ViewKeeper(events, KnownViews(), fallback=on).store(fan())
    assert events.refused == 1


def test_the_web_recorder_writes_a_marked_post_to_its_shards(services: Services) -> None:
    from chalicelib.ingest.schema import RecordViewRequest
    from chalicelib.ingest.web import WebHit

    services.registry.mark_hot(7, HotMark(10, END_OF_NEXT_DAY))
    ua = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    hit = WebHit(7, RecordViewRequest(), ua, None, "203.0.113.9", None)
    assert services.web_recorder.record(hit).counted
    assert not services.web_recorder.record(hit).counted
    stored = [e for n in range(1, 11) for e in services.events.day_events(7, DAY, n)]
    assert len(stored) == 1 and stored[0].shard is not None
    assert list(services.events.day_events(7, DAY)) == []


# ---- the close merges a Day's keys ----------------------------------------------------------


def test_the_close_reads_every_shard_a_day_used_and_counts_a_visitor_once(
    services: Services,
) -> None:
    before = [fan("h:early"), fan("h:both", occurred_at=AT + timedelta(minutes=1))]
    after = [
        fan("h:both", occurred_at=AT + timedelta(hours=1), country="DE"),  # stored again
        fan("h:late", occurred_at=AT + timedelta(hours=2)),
        fan(
            "h:late",
            occurred_at=AT + timedelta(hours=3),
            intent="impression",
            event_id="01KAT0000000000000000000BB",
        ),
    ]
    sharded = [replace(e, shard=keys.write_shard(e.visitor, 4)) for e in after]
    stored = []
    for event in before + sharded:
        if event.intent == "view":
            assert services.events.put_view(event)
        else:
            services.events.put_impression(event)
        stored.append(event)
    services.aggregator.handle(batch(stored))
    live = services.aggregate_items.get_items([("P#7", f"D#{DAY}")])[("P#7", f"D#{DAY}")]
    assert live["v"] == 4  # the live counter counts h:both twice: above the truth, never below
    closer = DayCloser(
        services.aggregates, services.events, services.clock, grace_s=0, budget_s=60, ttl_days=35
    )
    closer.run(datetime(2026, 11, 25, 1, tzinfo=UTC))
    day = services.aggregates.closed_day(Target.post(7), DAY)
    assert day is not None
    assert (day["v"], day["uv"], day["i"]) == (3, 3, 1)
    # h:both's View is the earliest one (base key, Brazil, 10:01), not the later copy.
    assert day["vc:BR"] == 3 and "vc:DE" not in day
    assert day["first_at"] == "2026-11-24T10:00:00.000Z"
