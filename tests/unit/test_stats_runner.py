"""The stats runner over items built from a known dataset: every count equals the truth,
closed Days come from series chunks and pieces only, and a request reads few items."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chalicelib.clock import FixedClock
from chalicelib.counts import Target
from chalicelib.counts import split_breakdown as split_name
from chalicelib.stats.query import parse_range
from chalicelib.stats.runner import (
    StatsRunner,
    apportion,
    fresh_as_of,
    top,
    wholly_inside,
)
from chalicelib.stats.sketches import decode
from chalicelib.storage import codec
from chalicelib.storage.aggregates import Aggregates, closed, layout
from chalicelib.storage.aggregates.closed import Piece
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore
from chalicelib.storage.aggregates.reading import Freshness
from tests.statsdata import Look, aggregate_items, random_looks, truth

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
POSTS = {1: "artist-a", 2: "artist-a", 3: "artist-b"}
BLOCK = 4096

Key = tuple[str, str]


class CountingStore(MemoryAggregateStore):
    """The in-memory store, counting each read: the call, the keys asked, the items
    returned, and its eventually consistent read units by DynamoDB's rules (a Query: 0.5
    per started 4 KB of the summed item sizes; a batch read: 0.5 per started 4 KB of each
    item, the minimum for a key that is not there)."""

    def __init__(self, items: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__()
        self.put_items(items)
        self.calls: list[str] = []
        self.asked: list[Key] = []
        self.returned: list[dict[str, Any]] = []
        self.rru = 0.0

    def reset(self) -> None:
        self.calls, self.asked, self.returned, self.rru = [], [], [], 0.0

    def get_items(self, keys_: Iterable[Key]) -> dict[Key, dict[str, Any]]:
        wanted = sorted(set(keys_))
        found = super().get_items(wanted)
        self.calls.append("batch")
        self.asked += wanted
        self.returned += list(found.values())
        self.rru += 0.5 * sum(
            max(1, math.ceil(codec.item_size(found[key]) / BLOCK)) if key in found else 1
            for key in wanted
        )
        return found

    def query_range(self, pk: str, first_sk: str, last_sk: str) -> list[dict[str, Any]]:
        found = super().query_range(pk, first_sk, last_sk)
        self.calls.append(f"query {first_sk[:2]}")
        self.returned += found
        self.rru += 0.5 * max(1, math.ceil(sum(codec.item_size(i) for i in found) / BLOCK))
        return found

    def sks(self) -> list[str]:
        return sorted(str(item["sk"]) for item in self.returned)


def watermark(day: str) -> dict[str, Any]:
    pk, sk = layout.watermark_key()
    return {"pk": pk, "sk": sk, "day": day}


def closed_through(looks: list[Look], last_closed: str) -> list[dict[str, Any]]:
    """The items of the looks with every Day through ``last_closed`` closed, and the watermark."""
    days = {look.day for look in looks if look.day <= last_closed}
    return [*aggregate_items(looks, days), watermark(last_closed)]


def stats(
    items: Iterable[dict[str, Any]] | CountingStore, pk: str, params: dict[str, str]
) -> dict[str, Any]:
    store = items if isinstance(items, CountingStore) else CountingStore(items)
    runner = StatsRunner(Aggregates(store), FixedClock(NOW))
    return runner.stats(layout.target_of(pk), parse_range(params, NOW))


@pytest.fixture(scope="module")
def dataset() -> list[Look]:
    return random_looks(random.Random(7), n=3000, first=date(2026, 11, 1), days=24, posts=POSTS)


@pytest.fixture(scope="module")
def through_21st(dataset: list[Look]) -> list[dict[str, Any]]:
    return closed_through(dataset, "2026-11-21")


def mine(looks: list[Look], pk: str) -> list[Look]:
    return [look for look in looks if pk in (f"P#{look.post}", f"A#{look.artist}", "SITE")]


@pytest.mark.parametrize("pk", ["P#1", "A#artist-a", "SITE"])
def test_a_utc_range_equals_the_truth(
    dataset: list[Look], through_21st: list[dict[str, Any]], pk: str
) -> None:
    got = stats(through_21st, pk, {"from": "2026-11-03", "to": "2026-11-21"})
    want = truth(mine(dataset, pk), UTC, date(2026, 11, 3), date(2026, 11, 21))
    for name in (
        "views",
        "impressions",
        "by_channel",
        "by_referrer",
        "by_hour_local",
        "first_view_at",
        "last_view_at",
    ):
        assert got[name] == want[name], name
    assert got["by_country"] == top(want["by_country"], 10, other=True)
    assert got["impressions_by_country"] == top(want["impressions_by_country"], 10, other=True)
    for name, names in (
        ("by_device", ("desktop", "mobile", "tablet", "player")),
        ("by_source", ("web", "widget", "api", "player")),
        ("by_play_order", ("0", "1", "2")),
    ):
        assert got[name] == {k: want[name].get(k, 0) for k in names}
    for row in got["daily"]:
        expected = want["daily"][row["date"]]
        assert (row["views"], row["impressions"]) == (expected["views"], expected["impressions"])
        assert row["unique_visitors"] == expected["unique_visitors"], row
    assert got["daily_unique_visitors_approximate"] is False
    assert got["authenticated"]["views"] == want["authenticated_views"]
    # A union of sketches, not a sum: within 3 % of the true distinct count.
    assert got["unique_visitors_approximate"] is True
    assert got["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.03)
    assert got["authenticated"]["unique_visitors"] == pytest.approx(
        want["authenticated_unique_visitors"], rel=0.03
    )


@pytest.mark.parametrize("pk", ["P#1", "A#artist-a"])
def test_open_days_add_counts_exactly_and_visitors_by_recent_novelty(
    dataset: list[Look], through_21st: list[dict[str, Any]], pk: str
) -> None:
    # The 22nd..24th are open: three of them, so read with a Query of their D# items.
    store = CountingStore(through_21st)
    got = stats(store, pk, {"from": "2026-11-03", "to": "2026-11-24"})
    want = truth(mine(dataset, pk), UTC, date(2026, 11, 3), date(2026, 11, 24))
    assert (got["views"], got["impressions"]) == (want["views"], want["impressions"])
    assert got["by_country"] == top(want["by_country"], 10, other=True)
    assert got["by_hour_local"] == want["by_hour_local"]
    assert got["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.1)
    assert got["fresh_as_of"] == "2026-11-24T10:00:00.000Z"
    assert store.calls == ["batch", "query S#", "batch", "query D#"]
    assert [sk for sk in store.sks() if sk.startswith("D#")] == [
        "D#2026-11-22",
        "D#2026-11-23",
        "D#2026-11-24",
    ]


def test_the_daily_series_is_zero_filled(through_21st: list[dict[str, Any]]) -> None:
    got = stats(through_21st, "P#1", {"from": "2026-10-28", "to": "2026-11-02"})
    assert [row["date"] for row in got["daily"]] == [
        "2026-10-28",
        "2026-10-29",
        "2026-10-30",
        "2026-10-31",
        "2026-11-01",
        "2026-11-02",
    ]
    assert got["daily"][0] == {
        "date": "2026-10-28",
        "views": 0,
        "impressions": 0,
        "unique_visitors": 0,
    }
    store = CountingStore(through_21st)
    empty = stats(store, "P#1", {"from": "2026-01-01", "to": "2026-01-03"})
    assert empty["views"] == 0 and empty["unique_visitors"] == 0
    assert empty["first_view_at"] is None and empty["by_hour_local"] == [0] * 24
    # No active closed Day in range: the first batch read is all it takes.
    assert store.calls == ["batch"]


def test_a_single_closed_day_is_exact_even_for_an_artist(
    dataset: list[Look], through_21st: list[dict[str, Any]]
) -> None:
    got = stats(through_21st, "A#artist-a", {"from": "2026-11-10", "to": "2026-11-10"})
    want = truth(mine(dataset, "A#artist-a"), UTC, date(2026, 11, 10), date(2026, 11, 10))
    assert (got["unique_visitors"], got["unique_visitors_approximate"]) == (
        want["unique_visitors"],
        False,
    )


def test_a_posts_single_open_day_is_exact_without_pieces(
    through_21st: list[dict[str, Any]],
) -> None:
    store = CountingStore(through_21st)
    got = stats(store, "P#1", {"from": "2026-11-23", "to": "2026-11-23"})
    assert got["unique_visitors_approximate"] is False
    assert got["unique_visitors"] == got["views"] > 0
    assert store.calls == ["batch", "batch"]
    assert not [sk for sk in store.sks() if sk.startswith(("B", "S#"))]


def test_an_artists_open_day_is_estimated_and_labelled(
    dataset: list[Look], through_21st: list[dict[str, Any]]
) -> None:
    got = stats(through_21st, "A#artist-a", {"from": "2026-11-23", "to": "2026-11-23"})
    want = truth(mine(dataset, "A#artist-a"), UTC, date(2026, 11, 23), date(2026, 11, 23))
    assert got["unique_visitors_approximate"] is True and got["daily_unique_visitors_approximate"]
    assert got["unique_visitors"] <= got["views"]
    assert got["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.25)


def test_range_uniques_are_a_union_never_a_sum() -> None:
    # The same 500 Visitors look every day for ten days.
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    looks = [
        Look(post=1, artist="a", visitor=f"h:{v}", at=start + timedelta(days=d))
        for d in range(10)
        for v in range(500)
    ]
    got = stats(
        closed_through(looks, "2026-11-10"), "P#1", {"from": "2026-11-01", "to": "2026-11-10"}
    )
    assert got["views"] == 5000
    assert got["unique_visitors"] == pytest.approx(500, rel=0.03)
    assert got["unique_visitors_approximate"] is True


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo"])
def test_whole_hour_zones_count_local_days_exactly(
    dataset: list[Look], through_21st: list[dict[str, Any]], zone: str
) -> None:
    got = stats(through_21st, "P#1", {"from": "2026-11-05", "to": "2026-11-12", "tz": zone})
    want = truth(mine(dataset, "P#1"), ZoneInfo(zone), date(2026, 11, 5), date(2026, 11, 12))
    assert got["views"] == want["views"] and got["impressions"] == want["impressions"]
    assert got["by_hour_local"] == want["by_hour_local"]
    assert [(r["views"], r["impressions"]) for r in got["daily"]] == [
        (want["daily"][r["date"]]["views"], want["daily"][r["date"]]["impressions"])
        for r in got["daily"]
    ]
    # Edge Days are apportioned: every breakdown still adds up to the Views.
    for name in ("by_country", "by_device", "by_source", "by_channel"):
        assert sum(got[name].values()) == got["views"], name
    assert got["unique_visitors_approximate"] is True
    assert got["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.1)


def test_a_non_utc_window_reads_blocks_inside_and_one_day_pieces_at_its_edges(
    dataset: list[Look], through_21st: list[dict[str, Any]]
) -> None:
    query = parse_range({"from": "2026-11-05", "to": "2026-11-12", "tz": "Asia/Tokyo"}, NOW)
    # UTC+9: the window is 2026-11-04T15:00Z .. 2026-11-12T15:00Z.
    assert query.utc_days()[0] == "2026-11-04" and query.utc_days()[-1] == "2026-11-12"
    inside = [d for d in query.utc_days() if wholly_inside(query, d)]
    assert inside == [f"2026-11-{n:02d}" for n in range(5, 12)]
    store = CountingStore(through_21st)
    got = stats(store, "P#1", {"from": "2026-11-05", "to": "2026-11-12", "tz": "Asia/Tokyo"})
    # 2026-11-05 is Day 20762 (even), 2026-11-07 is 20764 (a multiple of 4): the 7 Days
    # inside are a 2-Day block, a 4-Day block and a single Day.
    assert closed.day_number("2026-11-05") % 2 == 0 and closed.day_number("2026-11-07") % 4 == 0
    pieces = [sk for sk in store.sks() if sk.startswith("B")]
    assert pieces == [
        "B0#2026-11-04",  # a cut edge: its own Day, breakdowns apportioned
        "B0#2026-11-11",
        "B0#2026-11-12",  # the other cut edge
        "B1#2026-11-05",  # 11-05..11-06
        "B2#2026-11-07",  # 11-07..11-10
    ]
    assert store.calls == ["batch", "query S#", "batch"]
    want = truth(
        mine(dataset, "P#1"), ZoneInfo("Asia/Tokyo"), date(2026, 11, 5), date(2026, 11, 12)
    )
    assert got["views"] == want["views"]


def test_pieces_follow_the_activity_not_the_calendar() -> None:
    # Active on four Days only: a Day without looks has no piece and none is asked for.
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    looks = [
        Look(post=1, artist="a", visitor=f"h:{v}", at=start + timedelta(days=d))
        for d in (0, 1, 9, 13)
        for v in range(3)
    ]
    store = CountingStore(closed_through(looks, "2026-11-20"))
    got = stats(store, "P#1", {"from": "2026-11-01", "to": "2026-11-20"})
    assert got["views"] == 12
    asked = [sk for _, sk in store.asked if sk.startswith("B")]
    found = [sk for sk in store.sks() if sk.startswith("B")]
    assert asked == found  # every key asked exists
    active = closed.Activity(closed.day_number(f"2026-11-{d:02d}") for d in (1, 2, 10, 14))
    first, last = closed.day_number("2026-11-01"), closed.day_number("2026-11-20")
    assert sorted(found) == sorted(
        layout.piece_sk(level, closed.day_name(start))
        for level, start in closed.cover(first, last, active)
    )


def test_the_watermark_edge_is_never_counted_twice(dataset: list[Look]) -> None:
    """Live D# items of closed Days stay until their TTL: a reader never adds them. And the
    close writes a target's Day before it moves the watermark: until then the Day is open."""
    items = closed_through(dataset, "2026-11-21")
    for item in items:
        if item["sk"].startswith("D#") and item["sk"] <= "D#2026-11-21":
            item["v"] = item["v"] * 1000  # a stale live item would show
    want = truth(mine(dataset, "P#1"), UTC, date(2026, 11, 15), date(2026, 11, 24))
    params = {"from": "2026-11-15", "to": "2026-11-24"}
    assert stats(items, "P#1", params)["views"] == want["views"]
    # The close has written the 22nd (chunk, pieces, TOTAL) but not moved the watermark.
    ahead = [
        *aggregate_items(dataset, {look.day for look in dataset if look.day <= "2026-11-22"}),
        watermark("2026-11-21"),
    ]
    store = CountingStore(ahead)
    got = stats(store, "P#1", params)
    assert [row["views"] for row in got["daily"]] == [
        want["daily"][row["date"]]["views"] for row in got["daily"]
    ]
    assert got["views"] == want["views"]
    assert "D#2026-11-22" in store.sks() and "B0#2026-11-22" not in store.sks()


def test_blocks_a_close_in_progress_builds_are_not_asked_for() -> None:
    # Active on the 19th, 20th, 21st and 23rd. Closing the 23rd makes the block 19..22
    # readable; while the watermark is still at the 22nd, TOTAL may already hold the 23rd
    # (here: before that block is written). The reader asks for what exists as of the
    # watermark: the 19th..20th and the 21st.
    start = datetime(2026, 11, 19, 12, tzinfo=UTC)
    looks = [
        Look(post=1, artist="a", visitor=f"h:{v}", at=start + timedelta(days=d), country=c)
        for d in (0, 1, 2, 4)
        for v, c in enumerate(("BR", "US", "DE"))
    ]
    assert closed.day_number("2026-11-19") % 4 == 0
    items = closed_through(looks, "2026-11-22")
    later = aggregate_items(looks, {"2026-11-19", "2026-11-20", "2026-11-21", "2026-11-23"})
    total = next(i for i in later if i["pk"] == "P#1" and i["sk"] == layout.TOTAL_SK)
    assert total["thru"] == "2026-11-23"
    items = [i for i in items if not (i["pk"] == "P#1" and i["sk"] == layout.TOTAL_SK)] + [total]
    store = CountingStore(items)
    got = stats(store, "P#1", {"from": "2026-11-19", "to": "2026-11-24"})
    assert got["views"] == 12 and got["by_country"] == {"BR": 4, "US": 4, "DE": 4}
    asked = sorted(sk for _, sk in store.asked if sk.startswith("B"))
    assert asked == ["B0#2026-11-21", "B1#2026-11-19"]


def test_a_request_reads_few_items_whatever_the_views() -> None:
    """30 closed Days and today: three calls, at most 40 items and 10 RRU, flat in Views."""
    figures = []
    for per_day in (10, 1_000):
        looks = random_looks(
            random.Random(per_day),
            n=per_day * 31 * 10 // 7,
            first=date(2026, 10, 25),
            days=31,
            posts={1: "a"},
            visitors=1_000_000,
        )
        store = CountingStore(closed_through(looks, "2026-11-23"))
        got = stats(store, "P#1", {"from": "2026-10-26", "to": "2026-11-24"})
        assert got["views"] == sum(look.view for look in looks if look.day >= "2026-10-26")
        figures.append((len(store.returned), store.calls, store.rru))
    (small, calls, small_rru), (big, big_calls, big_rru) = figures
    assert calls == big_calls == ["batch", "query S#", "batch"]
    assert small == big <= 40
    assert small_rru <= big_rru <= 10


def test_the_csv_reads_no_pieces(through_21st: list[dict[str, Any]]) -> None:
    store = CountingStore(through_21st)
    runner = StatsRunner(Aggregates(store), FixedClock(NOW))
    query = parse_range({"from": "2026-11-03", "to": "2026-11-23", "tz": "Europe/Lisbon"}, NOW)
    daily = runner.daily(Target.post(1), query)
    full = stats(
        through_21st, "P#1", {"from": "2026-11-03", "to": "2026-11-23", "tz": "Europe/Lisbon"}
    )
    assert daily["everyone"]["daily"] == full["daily"]
    assert daily["signed_in"]["daily"] == full["authenticated"]["daily"]
    assert not [sk for sk in store.sks() if sk.startswith("B")]


def test_half_hour_zones_put_each_utc_hour_where_most_of_it_falls() -> None:
    at = datetime(2026, 11, 10, 18, 5, tzinfo=UTC)  # 23:35 in Kolkata
    look = Look(post=1, artist="a", visitor="h:1", at=at)
    for items in (aggregate_items([look], set()), closed_through([look], "2026-11-11")):
        got = stats(items, "P#1", {"from": "2026-11-10", "to": "2026-11-11", "tz": "Asia/Kolkata"})
        # The 18:00 UTC bucket is 23:30-00:30 local: counted at local 00:00 of the 11th.
        assert [r["views"] for r in got["daily"]] == [0, 1]
        assert got["by_hour_local"][0] == 1


def test_fresh_as_of_is_the_end_of_the_watermark_day_for_closed_ranges() -> None:
    days = ["2026-11-20", "2026-11-21"]
    assert fresh_as_of(days, Freshness("2026-11-22"), NOW) == datetime(2026, 11, 23, tzinfo=UTC)
    assert fresh_as_of([*days, "2026-11-24"], Freshness("2026-11-22"), NOW) == NOW
    live = NOW - timedelta(seconds=4)
    assert fresh_as_of(["2026-11-24"], Freshness("2026-11-23", live), NOW) == live
    assert fresh_as_of(days, Freshness(None), NOW) == NOW


def test_apportioned_breakdowns_add_up() -> None:
    counts = {"BR": 7, "US": 5, "DE": 1}
    for numerator in range(0, 14):
        part = apportion(counts, numerator, 13)
        assert sum(part.values()) == numerator
        assert all(part.get(k, 0) <= counts[k] for k in counts)


def test_top_keeps_ten_and_sums_the_rest() -> None:
    counts = {f"C{n:02d}": n for n in range(1, 15)}
    best = top(counts, 10, other=True)
    assert list(best)[:2] == ["C14", "C13"] and best["other"] == 1 + 2 + 3 + 4
    assert len(best) == 11


def test_counter_names_split_by_measure_and_dimension() -> None:
    assert split_name("avc:BR") == ("av", "c", "BR")
    assert split_name("ich:reactions") == ("i", "ch", "reactions")
    assert split_name("vpo:2") == ("v", "po", "2")
    assert split_name("vr:sub.example.com") == ("v", "r", "sub.example.com")
    assert split_name("aih:07") == ("ai", "h", "07")
    assert split_name("first_at") is None and split_name("gpk") is None


def test_a_damaged_sketch_falls_back_to_the_daily_counts() -> None:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    looks = [
        Look(post=1, artist="a", visitor=f"h:{v}", at=start + timedelta(days=d))
        for d in range(2)
        for v in range(10)
    ]
    items = closed_through(looks, "2026-11-02")
    for item in items:
        if item["sk"] == "B0#2026-11-02":
            item["hll"] = b"not a sketch"
    got = stats(items, "P#1", {"from": "2026-11-01", "to": "2026-11-02"})
    assert 10 <= got["unique_visitors"] <= 20 and got["unique_visitors_approximate"]


def test_sketch_bytes_round_trip() -> None:
    assert decode(closed.sketch_of({"a", "b"}, 12)).get_estimate() == pytest.approx(2)


def test_a_capped_tail_is_no_referrer_and_an_other_channel() -> None:
    day = closed.day_number("2026-11-10")
    row = closed.DayRow(totals={"v": 5}, unique={"v": 5}, hours={"v": {"10": 5}})
    piece = Piece(
        level=0,
        start=day,
        totals={"v": 5},
        parts={"v": {"r": {"a.com": 2, "~other": 3}, "ch": {"all": 1, "~other": 4}}},
    )
    items = [
        closed.series_item("P#1", closed.chunk_start("2026-11-10"), {"2026-11-10": row}, 1),
        piece.item("P#1"),
        {
            "pk": "P#1",
            "sk": "TOTAL",
            "v": 5,
            "thru": "2026-11-10",
            **closed.Activity([day]).attributes(),
        },
        watermark("2026-11-10"),
    ]
    # Asia/Tokyo cuts the Day: its one-Day piece is apportioned (all of it inside here).
    for tz in ("UTC", "Asia/Tokyo"):
        got = stats(items, "P#1", {"from": "2026-11-10", "to": "2026-11-10", "tz": tz})
        assert got["by_referrer"] == {"a.com": 2}
        assert got["by_channel"] == {"other": 4, "all": 1}
