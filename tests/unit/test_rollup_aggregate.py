"""The stream handler service over the in-memory fakes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.errors import StorageUnavailable
from chalicelib.storage import codec, keys
from chalicelib.storage.aggregates.items_memory import MAX_ITEM_BYTES, MemoryAggregateStore
from chalicelib.storage.ports import CounterUpdate
from chalicelib.wiring import Services, memory_services
from tests.conftest import load_event
from tests.unit.rollupkit import AT, batch, look


class CountingStore(MemoryAggregateStore):
    """The fake, counting the batches of items it was asked to put (markers)."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[int] = []
        self.fail_next: int | None = None  # fail after this many counter updates

    def put_items(self, items: Iterable[dict[str, Any]]) -> None:
        items = list(items)
        self.puts.append(len(items))
        super().put_items(items)

    def add_counters(self, updates: Iterable[CounterUpdate]) -> list[tuple[CounterUpdate, str]]:
        updates = list(updates)
        if self.fail_next is not None:
            applied, self.fail_next = updates[: self.fail_next], None
            super().add_counters(applied)
            raise StorageUnavailable("injected: DynamoDB throttled part-way")
        return super().add_counters(updates)


@pytest.fixture
def services() -> Services:
    built = memory_services(Settings(drop_flush_s=0), clock=FixedClock(AT + timedelta(minutes=5)))
    built.aggregate_items = CountingStore()
    return built


def item(services: Services, pk: str, sk: str) -> dict[str, Any]:
    return services.aggregate_items.get_items([(pk, sk)]).get((pk, sk)) or {}


def test_the_stream_batch_fixture(services: Services) -> None:
    answer = services.aggregator.handle(load_event("dynamodb_stream_batch"))
    assert answer == {"batchItemFailures": []}
    report = services.aggregator.last_report
    assert (report.records, report.events, report.ignored, report.bad) == (6, 3, 2, 1)
    post = item(services, "P#123", "D#2026-11-24")
    assert post["v"] == 1 and post["av"] == 1 and post["vr:makapix.club"] == 1
    assert post["i"] == 1 and post["ipo:2"] == 1 and post["ic:??"] == 1 and post["ich:all"] == 1
    assert post["owner"] == "artist-1"
    assert post["first_at"] == post["last_at"] == "2026-11-24T13:05:07.250Z"
    assert item(services, "SITE", "D#2026-11-24")["v"] == 2
    assert item(services, "A#artist-2", "D#2026-11-24")["vs:widget"] == 1
    # Live Day items expire with the Day's raw events; lifetime TOTALs are the close's.
    expires_at = keys.event_expires_at("2026-11-24", services.settings.event_ttl_days)
    assert post["expires_at"] == expires_at == codec.parse_iso("2026-12-30T00:00:00Z").timestamp()
    assert item(services, "A#artist-2", "TOTAL") == {} == item(services, "SITE", "TOTAL")
    # A post's first look lists it in the by_views index (RANK: v 0 until its first close).
    assert item(services, "P#124", "RANK") == {
        "pk": "P#124",
        "sk": "RANK",
        "gpk": "A#artist-2",
        "v": 0,
    }
    # The REMOVE of an October event (TTL expiry) touched nothing.
    assert item(services, "P#123", "D#2026-10-19") == {}
    markers = services.aggregate_items.query_range("DAY#2026-11-24", "P#", "P#~")
    assert [m["sk"] for m in markers] == ["P#123", "P#124"]
    assert markers[0]["expires_at"] == codec.parse_iso("2026-12-30T00:00:00Z").timestamp()
    state = item(services, "PUMP", "STATE")
    assert state["last_record_at"] == "2026-11-24T13:06:10.000Z"
    assert state["last_event_at"] == "2026-11-24T13:06:07.250Z"
    assert services.drop_store.get_drops(["2026-11-24"]) == {"bad_stream_record": 1}


def test_events_of_closed_days_are_skipped_and_counted(services: Services) -> None:
    services.aggregate_items.advance_watermark("2026-11-23")
    events = [look(occurred_at=AT - timedelta(days=1)), look(), look(visitor="h:b")]
    services.aggregator.handle(batch(events))
    assert item(services, "P#7", "D#2026-11-23") == {}
    assert item(services, "P#7", "D#2026-11-24")["v"] == 2
    assert services.drop_store.get_drops(["2026-11-24"]) == {"after_close": 1}
    assert services.aggregator.last_report.skipped_closed == 1


def test_the_live_path_leaves_total_to_the_close(services: Services) -> None:
    # What the close wrote for the closed Days before this one.
    closed_total = {"pk": "P#7", "sk": "TOTAL", "v": 5, "thru": "2026-11-23"}
    services.aggregate_items.put_items([closed_total])
    services.aggregator.handle(batch([look(visitor="h:a"), look(post=8, visitor="h:a")]))
    later = look(visitor="h:b", occurred_at=AT + timedelta(minutes=1))
    services.aggregator.handle(batch([later]))
    assert item(services, "P#7", "TOTAL") == closed_total
    assert item(services, "P#8", "TOTAL") == {}
    day = item(services, "P#7", "D#2026-11-24")
    assert day["v"] == 2 and day["first_at"] == "2026-11-24T10:00:00.000Z"
    assert day["last_at"] == "2026-11-24T10:01:00.000Z"
    assert day["expires_at"] == keys.event_expires_at("2026-11-24", 35)
    assert services.aggregator.last_report.updates == 3  # post, artist and site Days


def test_markers_are_written_once_per_post_and_day(services: Services) -> None:
    store = services.aggregate_items
    assert isinstance(store, CountingStore)
    for n in range(5):
        services.aggregator.handle(batch([look(visitor=f"h:{n}"), look(post=8, visitor=f"h:{n}")]))
    assert store.puts == [2]
    assert item(services, "P#8", "RANK")["gpk"] == "A#artist-1"
    # The post changes hands: its next Day's first look moves its index entry along.
    later = look(post=8, owner_id="artist-2", occurred_at=AT + timedelta(days=1))
    services.aggregator.handle(batch([later]))
    assert item(services, "P#8", "RANK")["gpk"] == "A#artist-2"
    assert item(services, "P#7", "D#2026-11-24")["v"] == 5


def test_a_failure_part_way_asks_for_the_whole_batch_again(services: Services) -> None:
    store = services.aggregate_items
    assert isinstance(store, CountingStore)
    event = batch([look(visitor=f"h:{n}") for n in range(3)] + [look(post=9)])
    store.fail_next = 2
    answer = services.aggregator.handle(event)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]
    }
    assert services.aggregator.last_report.failed
    assert services.aggregator.handle(event) == {"batchItemFailures": []}
    # At least once: never below the truth, possibly above it until the close.
    assert item(services, "P#7", "D#2026-11-24")["v"] >= 3
    assert item(services, "P#9", "D#2026-11-24")["v"] == 1
    assert item(services, "SITE", "D#2026-11-24")["v"] >= 4


def test_a_full_item_keeps_counting_without_open_ended_breakdowns(services: Services) -> None:
    base = {"pk": "P#7", "sk": "D#2026-11-24", "v": 1}
    filler = MAX_ITEM_BYTES - codec.item_size({**base, "blob": ""}) - 300
    services.aggregate_items.put_items([{**base, "blob": "x" * filler}])
    services.aggregator.handle(batch([look(referrer_domain="r" * 250 + ".example")]))
    day = item(services, "P#7", "D#2026-11-24")
    assert day["v"] == 2 and not any(name.startswith("vr:") for name in day)
    assert services.drop_store.get_drops(["2026-11-24"]) == {"counter_breakdown_trimmed": 1}


def test_an_item_full_even_without_them_drops_its_update_and_the_rest_count(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    base = {"pk": "P#7", "sk": "D#2026-11-24", "v": 1}
    filler = MAX_ITEM_BYTES - codec.item_size({**base, "blob": ""}) - 5
    services.aggregate_items.put_items([{**base, "blob": "x" * filler}])
    services.aggregator.handle(batch([look()]))
    assert item(services, "P#7", "D#2026-11-24")["v"] == 1
    assert item(services, "SITE", "D#2026-11-24")["v"] == 1
    assert services.drop_store.get_drops(["2026-11-24"]) == {
        "counter_breakdown_trimmed": 1,
        "counter_item_full": 1,
    }
    assert "refused" in caplog.text


def test_an_empty_event_is_a_no_op(services: Services) -> None:
    assert services.aggregator.handle({"Records": []}) == {"batchItemFailures": []}
    assert services.aggregator.handle({}) == {"batchItemFailures": []}


def test_stream_images_decode_as_boto3_decodes_them() -> None:
    from chalicelib.storage.stream import plain_image

    event = look(visitor="u:42", authenticated=True, play_order=2, shard=3, channel="all")
    image = codec.to_typed(codec.event_item(event, 35))
    assert plain_image(image) == codec.from_typed(image)
    odd = {"n": {"N": "-7"}, "f": {"N": "2.5"}, "l": {"L": [{"S": "x"}]}, "z": {"NULL": True}}
    assert plain_image(odd) == codec.from_typed(odd) == {"n": -7, "f": 2.5, "l": ["x"], "z": None}
