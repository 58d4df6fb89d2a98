"""The stats runner over items built from a known dataset: every count equals the truth."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chalicelib.stats.counters import DayCounters, day_counters, split_name
from chalicelib.stats.query import StatsQuery, parse_range
from chalicelib.stats.runner import Freshness, apportion, build_stats, fresh_as_of, top
from chalicelib.stats.sketches import decode
from tests.statsdata import Look, aggregate_items, random_looks, sketch, truth

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
POSTS = {1: "artist-a", 2: "artist-a", 3: "artist-b"}


def read(items: list[dict[str, Any]], pk: str, query: StatsQuery) -> tuple[list[DayCounters], Any]:
    """What the runner reads for ``pk``: D# items of the query's UTC days, and H# sketches."""
    wanted = set(query.utc_days())
    days = [
        day_counters(item["sk"][2:], item)
        for item in items
        if item["pk"] == pk and item["sk"].startswith("D#") and item["sk"][2:] in wanted
    ]
    sketches = {
        item["sk"][2:]: item for item in items if item["pk"] == pk and item["sk"].startswith("H#")
    }
    asked: list[str] = []

    def source(measure: str, names: Sequence[str]) -> dict[str, Any]:
        asked.extend(names)
        attribute = {"v": "hll", "av": "ahll"}[measure]
        return {name: decode(sketches[name][attribute]) for name in names if name in sketches}

    source.asked = asked  # type: ignore[attr-defined]
    return sorted(days, key=lambda d: d.day), source


def stats(
    items: list[dict[str, Any]],
    pk: str,
    params: dict[str, str],
    kind: str = "post",
    watermark: str | None = None,
) -> dict[str, Any]:
    query = parse_range(params, NOW)
    days, source = read(items, pk, query)
    return build_stats(
        query,
        days,
        kind=kind,
        sketch_source=source,  # type: ignore[arg-type]
        freshness=Freshness(watermark),
        now=NOW,
    )


@pytest.fixture(scope="module")
def dataset() -> list[Look]:
    return random_looks(random.Random(7), n=3000, first=date(2026, 11, 1), days=24, posts=POSTS)


def closed_through(looks: list[Look], last_closed: str) -> list[dict[str, Any]]:
    return aggregate_items(looks, {look.day for look in looks if look.day <= last_closed})


@pytest.mark.parametrize(
    ("pk", "kind"), [("P#1", "post"), ("A#artist-a", "artist"), ("SITE", "site")]
)
def test_a_utc_range_equals_the_truth(dataset: list[Look], pk: str, kind: str) -> None:
    items = closed_through(dataset, "2026-11-21")
    mine = [look for look in dataset if pk in (f"P#{look.post}", f"A#{look.artist}", "SITE")]
    params = {"from": "2026-11-03", "to": "2026-11-21"}
    got = stats(items, pk, params, kind)
    want = truth(mine, UTC, date(2026, 11, 3), date(2026, 11, 21))
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
    for name, keys in (
        ("by_device", ("desktop", "mobile", "tablet", "player")),
        ("by_source", ("web", "widget", "api", "player")),
        ("by_play_order", ("0", "1", "2")),
    ):
        assert got[name] == {k: want[name].get(k, 0) for k in keys}
    for row in got["daily"]:
        expected = want["daily"][row["date"]]
        assert (row["views"], row["impressions"]) == (expected["views"], expected["impressions"])
        if kind == "post" or row["date"] <= "2026-11-21":
            assert row["unique_visitors"] == expected["unique_visitors"], row
    assert got["authenticated"]["views"] == want["authenticated_views"]
    # A union of sketches, not a sum: within 3 % of the true distinct count.
    assert got["unique_visitors_approximate"] is True
    assert got["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.03)
    assert got["authenticated"]["unique_visitors"] == pytest.approx(
        want["authenticated_unique_visitors"], rel=0.03
    )


@pytest.mark.parametrize(("pk", "kind"), [("P#1", "post"), ("A#artist-a", "artist")])
def test_open_days_add_counts_exactly_and_visitors_by_recent_novelty(
    dataset: list[Look], pk: str, kind: str
) -> None:
    items = closed_through(dataset, "2026-11-21")  # the 22nd..24th are still open
    mine = [look for look in dataset if pk in (f"P#{look.post}", f"A#{look.artist}")]
    got = stats(items, pk, {"from": "2026-11-03", "to": "2026-11-24"}, kind, "2026-11-21")
    want = truth(mine, UTC, date(2026, 11, 3), date(2026, 11, 24))
    assert (got["views"], got["impressions"]) == (want["views"], want["impressions"])
    assert got["by_country"] == top(want["by_country"], 10, other=True)
    assert got["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.1)
    assert got["fresh_as_of"] == "2026-11-24T10:00:00.000Z"


def test_the_daily_series_is_zero_filled(dataset: list[Look]) -> None:
    items = closed_through(dataset, "2026-11-21")
    got = stats(items, "P#1", {"from": "2026-10-28", "to": "2026-11-02"})
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
    empty = stats(items, "P#1", {"from": "2026-01-01", "to": "2026-01-03"})
    assert empty["views"] == 0 and empty["unique_visitors"] == 0
    assert empty["first_view_at"] is None and empty["by_hour_local"] == [0] * 24


def test_a_single_closed_day_is_exact_even_for_an_artist(dataset: list[Look]) -> None:
    items = closed_through(dataset, "2026-11-21")
    got = stats(items, "A#artist-a", {"from": "2026-11-10", "to": "2026-11-10"}, "artist")
    want = truth(
        [look for look in dataset if look.artist == "artist-a"],
        UTC,
        date(2026, 11, 10),
        date(2026, 11, 10),
    )
    assert (got["unique_visitors"], got["unique_visitors_approximate"]) == (
        want["unique_visitors"],
        False,
    )


def test_a_posts_single_open_day_is_exact_without_sketches(dataset: list[Look]) -> None:
    items = closed_through(dataset, "2026-11-21")
    query = parse_range({"from": "2026-11-23", "to": "2026-11-23"}, NOW)
    days, source = read(items, "P#1", query)
    got = build_stats(
        query, days, kind="post", sketch_source=source, freshness=Freshness(None), now=NOW
    )
    assert got["unique_visitors_approximate"] is False
    assert got["unique_visitors"] == got["views"]
    assert source.asked == []  # type: ignore[attr-defined]


def test_an_artists_open_day_is_estimated_and_labelled(dataset: list[Look]) -> None:
    items = closed_through(dataset, "2026-11-21")
    got = stats(items, "A#artist-a", {"from": "2026-11-23", "to": "2026-11-23"}, "artist")
    want = truth(
        [look for look in dataset if look.artist == "artist-a"],
        UTC,
        date(2026, 11, 23),
        date(2026, 11, 23),
    )
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
    items = aggregate_items(looks, {look.day for look in looks})
    got = stats(items, "P#1", {"from": "2026-11-01", "to": "2026-11-10"})
    assert got["views"] == 5000
    assert got["unique_visitors"] == pytest.approx(500, rel=0.03)
    assert got["unique_visitors_approximate"] is True


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo"])
def test_whole_hour_zones_count_local_days_exactly(dataset: list[Look], zone: str) -> None:
    items = closed_through(dataset, "2026-11-21")
    got = stats(items, "P#1", {"from": "2026-11-05", "to": "2026-11-12", "tz": zone})
    want = truth(
        [look for look in dataset if look.post == 1],
        ZoneInfo(zone),
        date(2026, 11, 5),
        date(2026, 11, 12),
    )
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


def test_half_hour_zones_put_each_utc_hour_where_most_of_it_falls() -> None:
    at = datetime(2026, 11, 10, 18, 5, tzinfo=UTC)  # 23:35 in Kolkata
    items = aggregate_items([Look(post=1, artist="a", visitor="h:1", at=at)], set())
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
    items = aggregate_items(looks, {"2026-11-01", "2026-11-02"})
    for item in items:
        if item["sk"] == "H#2026-11-02":
            item["hll"] = b"not a sketch"
    got = stats(items, "P#1", {"from": "2026-11-01", "to": "2026-11-02"})
    assert 10 <= got["unique_visitors"] <= 20 and got["unique_visitors_approximate"]


def test_sketch_bytes_round_trip() -> None:
    assert decode(sketch({"a", "b"})).get_estimate() == pytest.approx(2)


def test_a_capped_tail_is_no_referrer_and_an_other_channel() -> None:
    day = {"v": 5, "vh:10": 5, "vr:a.com": 2, "vr:~other": 3, "vch:all": 1, "vch:~other": 4}
    items = [{"pk": "P#1", "sk": "D#2026-11-10", "closed": True, "uv": 5, **day}]
    got = stats(items, "P#1", {"from": "2026-11-10", "to": "2026-11-10"})
    assert got["by_referrer"] == {"a.com": 2}
    assert got["by_channel"] == {"other": 4, "all": 1}
