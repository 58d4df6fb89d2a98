"""The daily close over the in-memory fakes: exact, idempotent, resumable, never backwards;
closed Days as series rows, pieces and blocks (storage/aggregates/closed.py), TOTAL with its bitmap."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import datasketches
import pytest

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.counts import SITE, Target
from chalicelib.model import ViewEvent
from chalicelib.rollup.close import CloseRaced, CloseReport, DayCloser, last_finished_day
from chalicelib.storage.aggregates import closed
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore
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
    store = services.aggregate_items
    assert isinstance(store, MemoryAggregateStore)
    return json.loads(json.dumps({repr(k): v for k, v in store.items.items()}, default=repr))


def get(services: Services, pk: str, sk: str) -> dict[str, Any]:
    return services.aggregate_items.get_items([(pk, sk)]).get((pk, sk)) or {}


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


def day_of(services: Services, target: Target, day: str = DAY) -> dict[str, Any]:
    return services.aggregates.closed_day(target, day) or {}


def piece(services: Services, pk: str, level: int, day: str) -> closed.Piece | None:
    key = closed.piece_key(pk, level, closed.day_number(day))
    item = services.aggregate_items.get_items([key]).get(key)
    return closed.Piece.from_item(item) if item else None


def estimate(raw: bytes) -> float:
    return float(datasketches.hll_sketch.deserialize(raw).get_estimate())


def test_closed_days_are_exact_whatever_the_live_path_did(services: Services) -> None:
    sample_day(services)
    assert get(services, "P#7", f"D#{DAY}")["v"] == 12  # counted twice live
    closer(services).run(END + timedelta(hours=2))
    post = day_of(services, Target.post(7))
    assert post["v"] == 6 and post["uv"] == 6 and post["av"] == 1 and post["auv"] == 1
    assert post["vr:a.example"] == 1 and post["vc:BR"] == 6 and post["vh:10"] == 6
    assert post["first_at"] == "2026-11-24T10:00:00.000Z"
    artist2 = day_of(services, Target.artist("artist-2"))
    assert artist2["v"] == 3 and artist2["i"] == 1 and artist2["uv"] == 3
    site = day_of(services, SITE)
    # h:0..h:2 viewed both posts: distinct Visitors across the site are 6, not 9.
    assert site["v"] == 9 and site["uv"] == 6 and site["auv"] == 1 and site["i"] == 1
    site_piece = piece(services, "SITE", 0, DAY)
    assert site_piece is not None and round(estimate(site_piece.sketches["v"])) == 6
    p7, p8 = piece(services, "P#7", 0, DAY), piece(services, "P#8", 0, DAY)
    assert p7 is not None and p8 is not None
    assert set(p7.sketches) == {"v", "av"} and set(p8.sketches) == {"v"}
    assert "h" not in p7.parts["v"] and p7.parts["v"]["d"] == {"mobile": 6}
    # The live Day item is left as it was (it expires with the Day's raw events).
    live = get(services, "P#7", f"D#{DAY}")
    assert live["v"] == 12 and "closed" not in live and live["expires_at"] > 0
    # TOTAL holds the closed Days only, with the bitmap of the Days the post was active.
    total = get(services, "P#7", "TOTAL")
    assert total["v"] == 6 and total["av"] == 1 and total["owner"] == "artist-1"
    assert total["thru"] == DAY and closed.Activity.from_item(total).days == [
        closed.day_number(DAY)
    ]
    assert set(total) <= {
        *("pk", "sk", "v", "av", "i", "ai", "owner", "first_at", "last_at", "thru"),
        *("act0", "act"),
    }
    assert get(services, "SITE", "TOTAL")["v"] == 9
    # The index entry moves at the close: an artist's posts by lifetime Views.
    rank = get(services, "P#7", "RANK")
    assert rank == {
        "pk": "P#7",
        "sk": "RANK",
        "gpk": "A#artist-1",
        "v": 6,
        **{k: total[k] for k in ("i", "first_at", "last_at") if k in total},
    }
    page, _ = services.aggregate_items.query_artist_posts("artist-1", 10, None)
    assert [(row["pk"], row["v"]) for row in page] == [("P#7", 6)]
    # Nothing of the retired format is written.
    assert not [k for k in dump(services) if "'CLOSED'" in k or "'H#" in k]


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
    assert services.aggregate_items.get_watermark() == "2026-11-25"
    before = dump(services)
    forced = CloseReport()
    closer(services).close_day(DAY, END + timedelta(days=1, hours=3), forced)
    assert forced.writes == 0
    assert dump(services) == before
    assert get(services, "P#7", "TOTAL")["v"] == 7


def test_the_close_stops_inside_its_budget_and_resumes(services: Services) -> None:
    for day in range(3):
        at = AT + timedelta(days=day)
        record(services, [look(post=p, visitor=f"h:{p}", occurred_at=at) for p in range(1, 6)])
    services.aggregate_items.advance_watermark("2026-11-23")
    ticker = Ticker()
    now = END + timedelta(days=3)
    report = closer(services, budget_s=12, monotonic=ticker).run(now)
    assert report.stopped == "budget" and report.closed_days
    assert services.aggregate_items.get_watermark() == report.closed_days[-1]
    assert len(report.closed_days) < 3
    rest = closer(services, budget_s=1000, monotonic=ticker).run(now)
    assert rest.stopped is None and rest.watermark == "2026-11-26"
    assert day_of(services, SITE, "2026-11-25")["v"] == 5


def test_the_watermark_never_moves_back(services: Services) -> None:
    sample_day(services)
    closer(services).run(END + timedelta(hours=2))
    report = closer(services).run(END + timedelta(hours=2), through="2026-11-20")
    assert report.closed_days == [] and report.watermark == DAY


class Racing(MemoryAggregateStore):
    """The fake, where another writer changes P#7's item just before its conditional write:
    the first write of each item, or ``always``."""

    def __init__(self, items: dict[tuple[str, str], dict[str, Any]], always: bool = False) -> None:
        super().__init__()
        self.items = items
        self.always = always
        self.raced: list[str] = []

    def put_if(self, item: dict[str, Any], attribute: str, expected: Any) -> bool:
        if item["pk"] == "P#7" and (self.always or item["sk"] not in self.raced):
            self.raced.append(str(item["sk"]))
            self.other_writer(item)
        return super().put_if(item, attribute, expected)

    def other_writer(self, item: dict[str, Any]) -> None:
        if str(item["sk"]).startswith("S#"):
            # Another run writes another Day of the same chunk first.
            key = (str(item["pk"]), str(item["sk"]))
            old = self.get_items([key]).get(key)
            rows = closed.series_rows(old)
            rows["2026-11-23"] = closed.DayRow(totals={"v": 1}, unique={"v": 1, "av": 0})
            rev = int(old["rev"]) if old else None
            item = closed.series_item("P#7", "2026-11-19", rows, (rev or 0) + 1)
            super().put_if(item, "rev", rev)
        elif item["sk"] == "TOTAL":
            super().put_if(item, "thru", None)  # the same Day, added by a concurrent close


def test_a_chunk_row_written_by_another_run_first_is_kept(services: Services) -> None:
    sample_day(services)
    assert isinstance(services.aggregate_items, MemoryAggregateStore)
    racing = services.aggregate_items = Racing(services.aggregate_items.items)
    closer(services).run(END + timedelta(hours=2))
    assert racing.raced == ["S#2026-11-19", "TOTAL"]
    rows = closed.series_rows(get(services, "P#7", "S#2026-11-19"))
    assert sorted(rows) == ["2026-11-23", DAY] and rows[DAY].totals["v"] == 6
    assert get(services, "P#7", "S#2026-11-19")["rev"] == 2
    # The TOTAL took the Day once, though two closes raced to add it.
    assert get(services, "P#7", "TOTAL")["v"] == 6


def test_a_close_that_keeps_losing_races_stops_before_the_watermark(services: Services) -> None:
    sample_day(services)
    assert isinstance(services.aggregate_items, MemoryAggregateStore)
    services.aggregate_items = Racing(services.aggregate_items.items, always=True)
    with pytest.raises(CloseRaced):
        closer(services).run(END + timedelta(hours=2))
    assert services.aggregate_items.get_watermark() is None


def test_a_marked_post_whose_raw_events_expired_keeps_its_live_counts(services: Services) -> None:
    services.aggregate_items.put_items(
        [
            {"pk": "DAY#2026-11-24", "sk": "P#5"},
            {"pk": "P#5", "sk": f"D#{DAY}", "v": 4, "vc:BR": 4, "vh:09": 4, "owner": "artist-9"},
        ]
    )
    closer(services).run(END + timedelta(hours=2))
    post = day_of(services, Target.post(5))
    assert post["v"] == 4 and post["uv"] == 4 and post["vc:BR"] == 4 and post["vh:09"] == 4
    kept = piece(services, "P#5", 0, DAY)
    assert kept is not None and kept.sketches == {}  # its Visitors are unknown
    assert day_of(services, Target.artist("artist-9"))["v"] == 4
    assert get(services, "P#5", "TOTAL")["v"] == 4


def test_the_close_reports_the_watermark_age_as_a_metric(services: Services) -> None:
    sample_day(services)
    lines: list[str] = []
    closer(services, stage="prod", emit=lines.append).run(END + timedelta(hours=2))
    [line] = lines
    metric = json.loads(line)
    assert metric["CloseWatermarkAge"] == 7200 and metric["Stage"] == "prod"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "VTS"


def test_blocks_are_built_when_the_target_is_next_active_after_their_end(
    services: Services,
) -> None:
    days = {"2026-11-23": ["h:a", "h:b"], "2026-11-25": ["h:a", "h:c", "h:d"]}
    days["2026-11-29"] = ["h:e"]
    for day, visitors in days.items():
        at = AT + timedelta(days=(closed.day_number(day) - closed.day_number(DAY)))
        record(services, [look(visitor=v, occurred_at=at) for v in visitors])
    record(services, [look(post=8, occurred_at=AT + timedelta(days=5))])  # on 11-29 only
    now = END + timedelta(days=5, hours=2)
    closer(services).run(now, through="2026-11-28")
    assert services.aggregates.closed_day(Target.post(7), "2026-11-24") is None  # no look that Day
    # B2 of 11-23..11-26 has both halves active, but its end is not closed for this post
    # until it is next active (11-29): nothing gets written for it in between.
    assert piece(services, "P#7", 2, "2026-11-23") is None
    assert piece(services, "P#7", 1, "2026-11-23") is None  # 11-24 was not active
    report = closer(services).run(now)
    assert report.closed_days == ["2026-11-29"]
    block = piece(services, "P#7", 2, "2026-11-23")
    assert block is not None and block.totals == {"v": 5}
    assert block.parts["v"]["c"] == {"BR": 5} and round(estimate(block.sketches["v"])) == 4
    assert block.first_at == "2026-11-23T10:00:00.000Z"
    assert block.last_at == "2026-11-25T10:00:00.000Z"
    # The bitmap on TOTAL says which Days (so which pieces) exist; every cover is stored.
    total = get(services, "P#7", "TOTAL")
    active = closed.Activity.from_item(total)
    assert [closed.day_name(n) for n in active.days] == sorted(days)
    assert total["thru"] == "2026-11-29" and total["v"] == 6 and total["act"] == b"\x45"
    first, last = closed.day_number("2026-11-20"), closed.day_number("2026-11-30")
    cover = closed.cover(first, last, active)
    assert cover == [(2, closed.day_number("2026-11-23")), (0, closed.day_number("2026-11-29"))]
    assert all(piece(services, "P#7", level, closed.day_name(n)) for level, n in cover)
    # Each Day's row sits in its 8-Day chunk.
    assert sorted(closed.series_rows(get(services, "P#7", "S#2026-11-19"))) == [
        "2026-11-23",
        "2026-11-25",
    ]
    assert closed.series_rows(get(services, "P#7", "S#2026-11-27"))["2026-11-29"].unique == {
        "v": 1,
        "av": 0,
    }
    # A post seen once writes no block, and its bitmap holds that one Day.
    assert closed.Activity.from_item(get(services, "P#8", "TOTAL")).days == [
        closed.day_number("2026-11-29")
    ]
    assert not [k for k in dump(services) if "'P#8'" in k and "'B" in k and "'B0#" not in k]
    # Closing 11-29 again writes nothing.
    forced = CloseReport()
    closer(services).close_day("2026-11-29", now, forced)
    assert forced.writes == 0


def test_a_block_missing_a_child_is_built_from_the_rest_and_logged(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    for offset in (-1, 1, 5):  # 11-23, 11-25, 11-29: B2 of 11-23..11-26 is built on 11-29
        record(services, [look(visitor=f"h:{offset}", occurred_at=AT + timedelta(days=offset))])
    now = END + timedelta(days=5, hours=2)
    closer(services).run(now, through="2026-11-28")
    store = services.aggregate_items
    assert isinstance(store, MemoryAggregateStore)
    del store.items[closed.piece_key("P#7", 0, closed.day_number("2026-11-23"))]
    closer(services).run(now)
    block = piece(services, "P#7", 2, "2026-11-23")
    assert block is not None and block.totals == {"v": 1}  # 11-25's only
    assert "P#7 lacks B0#2026-11-23" in caplog.text
