"""The daily close over the in-memory fakes: exact, idempotent, resumable, never backwards."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import datasketches
import pytest

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.model import ViewEvent
from chalicelib.rollup.close import CloseReport, DayCloser, last_finished_day
from chalicelib.storage.aggregates_memory import MemoryAggregateStore
from chalicelib.storage.ports import CounterUpdate
from chalicelib.wiring import Services, memory_services
from tests.unit.rollupkit import AT, batch, look

DAY = "2026-11-24"
END = AT.replace(hour=0) + timedelta(days=1)  # the end of DAY


class Ticker:
    """A monotonic clock that moves one second per reading (budget tests, no wall time)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture
def services() -> Services:
    return memory_services(Settings(drop_flush_s=0), clock=FixedClock(AT))


def closer(services: Services, **changes: Any) -> DayCloser:
    options: dict[str, Any] = dict(grace_s=3600, budget_s=600, ttl_days=35)
    options.update(changes)
    return DayCloser(services.aggregates, services.events, services.clock, **options)


def record(services: Services, events: Iterable[ViewEvent], *, times: int = 1) -> list[ViewEvent]:
    """Store events as the recorder would, and feed the stored ones to the aggregator
    ``times`` times (a retried stream batch counts again)."""
    stored = []
    for event in events:
        if event.intent == "impression":
            services.events.put_impression(event)
            stored.append(event)
        elif services.events.put_view(event):
            stored.append(event)
    for _ in range(times):
        services.aggregator.handle(batch(stored))
    return stored


def dump(services: Services) -> dict[tuple[str, str], dict[str, Any]]:
    store = services.aggregates
    assert isinstance(store, MemoryAggregateStore)
    return json.loads(json.dumps({repr(k): v for k, v in store.items.items()}, default=repr))


def get(services: Services, pk: str, sk: str) -> dict[str, Any]:
    return services.aggregates.get_items([(pk, sk)]).get((pk, sk)) or {}


def sample_day(services: Services) -> None:
    """Post 7 (artist-1) and post 8 (artist-2) on DAY, twice counted live; one look the next Day."""
    looks = [look(visitor=f"h:{n}", occurred_at=AT + timedelta(minutes=n)) for n in range(5)]
    looks += [look(visitor="u:fan", authenticated=True, referrer_domain="a.example")]
    looks += [
        look(post=8, owner_id="artist-2", visitor=f"h:{n}", device="desktop") for n in range(3)
    ]
    looks += [
        look(post=8, owner_id="artist-2", intent="impression", visitor="h:9", source="player")
    ]
    looks += [look(visitor="h:0")]  # a duplicate View: not stored
    record(services, looks, times=2)
    record(services, [look(visitor="h:next", occurred_at=END + timedelta(minutes=30))])


def test_a_day_closes_only_after_its_grace(services: Services) -> None:
    assert last_finished_day(END + timedelta(minutes=59), 3600) == "2026-11-23"
    assert last_finished_day(END + timedelta(minutes=60), 3600) == DAY
    sample_day(services)
    assert DAY not in closer(services).run(END + timedelta(minutes=59)).closed_days
    report = closer(services).run(END + timedelta(minutes=60))
    assert report.closed_days[-1] == DAY and report.watermark == DAY
    assert report.pending_days == 0


def test_closed_days_are_exact_whatever_the_live_path_did(services: Services) -> None:
    sample_day(services)
    assert get(services, "P#7", f"D#{DAY}")["v"] == 12  # counted twice live
    closer(services).run(END + timedelta(hours=2))
    post = get(services, "P#7", f"D#{DAY}")
    assert post["v"] == 6 and post["uv"] == 6 and post["av"] == 1 and post["auv"] == 1
    assert post["vr:a.example"] == 1 and post["vc:BR"] == 6
    assert post["closed"] is True and post["closed_at"] == "2026-11-25T02:00:00.000Z"
    assert post["first_at"] == "2026-11-24T10:00:00.000Z" and post["owner"] == "artist-1"
    artist2 = get(services, "A#artist-2", f"D#{DAY}")
    assert artist2["v"] == 3 and artist2["i"] == 1 and artist2["uv"] == 3
    site = get(services, "SITE", f"D#{DAY}")
    # h:0..h:2 viewed both posts: distinct Visitors across the site are 6, not 9.
    assert site["v"] == 9 and site["uv"] == 6 and site["auv"] == 1 and site["i"] == 1
    sketch = datasketches.hll_sketch.deserialize(get(services, "SITE", f"H#{DAY}")["hll"])
    assert round(sketch.get_estimate()) == 6
    assert "ahll" in get(services, "P#7", f"H#{DAY}") and "ahll" not in get(
        services, "P#8", f"H#{DAY}"
    )
    # TOTAL = the exact closed Day + the live open Day after it.
    total = get(services, "P#7", "TOTAL")
    assert total["v"] == 7 and total["rev"] >= 1 and total["owner"] == "artist-1"
    assert set(total) <= {"pk", "sk", "v", "av", "i", "ai", "rev", "owner", "first_at", "last_at"}
    assert get(services, "SITE", "TOTAL")["v"] == 10
    # The index entry moves at the close: an artist's posts by lifetime Views.
    assert get(services, "P#7", "RANK") == {"pk": "P#7", "sk": "RANK", "gpk": "A#artist-1", "v": 7}
    page, _ = services.aggregates.query_artist_posts("artist-1", 10, None)
    assert [row["pk"] for row in page] == ["P#7"] and page[0]["sk"] == "TOTAL"
    assert (
        get(services, "P#7", "CLOSED")["v"] == 6 and get(services, "P#7", "CLOSED")["thru"] == DAY
    )


def test_a_second_close_changes_nothing(services: Services) -> None:
    sample_day(services)
    closer(services).run(END + timedelta(hours=2))
    before = dump(services)
    again = closer(services).run(END + timedelta(hours=3), through=DAY)
    assert again.closed_days == [] and again.writes == 0
    # Even a forced re-close of the same Day writes nothing.
    forced = CloseReport()
    closer(services).close_day(DAY, END + timedelta(hours=5), forced)
    assert forced.writes == 0 and forced.events == 10
    assert dump(services) == before


def test_closing_an_earlier_day_again_changes_nothing(services: Services) -> None:
    sample_day(services)
    closer(services).run(END + timedelta(days=1, hours=2))  # DAY and the Day after it
    assert services.aggregates.get_watermark() == "2026-11-25"
    before = dump(services)
    forced = CloseReport()
    closer(services).close_day(DAY, END + timedelta(days=1, hours=3), forced)
    assert forced.writes == 0
    assert dump(services) == before
    assert get(services, "P#7", "TOTAL")["v"] == 7


def test_totals_heal_drift_left_by_a_failed_batch(services: Services) -> None:
    sample_day(services)
    # A batch that reached TOTAL but not its Day item (then failed, and was retried).
    services.aggregates.add_counters([CounterUpdate("P#7", "TOTAL", add={"v": 40, "vc:XX": 40})])
    closer(services).run(END + timedelta(hours=2))
    total = get(services, "P#7", "TOTAL")
    assert total["v"] == 7 and "vc:XX" not in total


def test_the_close_stops_inside_its_budget_and_resumes(services: Services) -> None:
    for day in range(3):
        at = AT + timedelta(days=day)
        record(services, [look(post=p, visitor=f"h:{p}", occurred_at=at) for p in range(1, 6)])
    services.aggregates.advance_watermark("2026-11-23")
    ticker = Ticker()
    now = END + timedelta(days=3)
    report = closer(services, budget_s=12, monotonic=ticker).run(now)
    assert report.stopped == "budget" and report.closed_days
    assert services.aggregates.get_watermark() == report.closed_days[-1]
    assert len(report.closed_days) < 3
    rest = closer(services, budget_s=1000, monotonic=ticker).run(now)
    assert rest.stopped is None and rest.watermark == "2026-11-26"
    assert get(services, "SITE", "D#2026-11-25")["v"] == 5


def test_the_watermark_never_moves_back(services: Services) -> None:
    sample_day(services)
    closer(services).run(END + timedelta(hours=2))
    report = closer(services).run(END + timedelta(hours=2), through="2026-11-20")
    assert report.closed_days == [] and report.watermark == DAY


def test_a_live_update_racing_the_total_rebuild_is_kept(services: Services) -> None:
    sample_day(services)

    class Racing(MemoryAggregateStore):
        raced = False

        def put_if(self, item: dict[str, Any], attribute: str, expected: Any) -> bool:
            if item["sk"] == "TOTAL" and item["pk"] == "P#7" and not self.raced:
                self.raced = True  # a live batch for the open Day lands first
                self.add_counters(
                    [
                        CounterUpdate("P#7", "D#2026-11-25", add={"v": 1}),
                        CounterUpdate("P#7", "TOTAL", add={"v": 1, "rev": 1}),
                    ]
                )
            return super().put_if(item, attribute, expected)

    racing = Racing()
    assert isinstance(services.aggregates, MemoryAggregateStore)
    racing.items = services.aggregates.items
    services.aggregates = racing
    closer(services).run(END + timedelta(hours=2))
    assert racing.raced
    assert get(services, "P#7", "TOTAL")["v"] == 6 + 2  # the exact Day + the open Day's 2


def test_a_marked_post_whose_raw_events_expired_keeps_its_live_counts(services: Services) -> None:
    services.aggregates.put_items(
        [
            {"pk": "DAY#2026-11-24", "sk": "P#5"},
            {"pk": "P#5", "sk": f"D#{DAY}", "v": 4, "vc:BR": 4, "owner": "artist-9"},
        ]
    )
    closer(services).run(END + timedelta(hours=2))
    post = get(services, "P#5", f"D#{DAY}")
    assert post["v"] == 4 and post["closed"] is True and post["uv"] == 4
    assert get(services, "A#artist-9", f"D#{DAY}")["v"] == 4


def test_the_close_reports_the_watermark_age_as_a_metric(services: Services) -> None:
    sample_day(services)
    lines: list[str] = []
    closer(services, stage="prod", emit=lines.append).run(END + timedelta(hours=2))
    [line] = lines
    metric = json.loads(line)
    assert metric["CloseWatermarkAge"] == 7200 and metric["Stage"] == "prod"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "VTS"
