"""Stats query parsing: defaults, every 400, and how local dates map onto UTC hours."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from chalicelib.errors import BadRequest
from chalicelib.stats.query import parse_page, parse_range

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_the_default_is_the_last_30_days_ending_today_in_the_zone() -> None:
    query = parse_range({}, NOW)
    assert (query.first, query.last, query.tz_name) == (
        date(2026, 10, 26),
        date(2026, 11, 24),
        "UTC",
    )
    # 10:00 UTC is already the 25th in Kiritimati (UTC+14).
    query = parse_range({"tz": "Pacific/Kiritimati"}, NOW)
    assert query.last == date(2026, 11, 25) and len(query.dates) == 30


def test_one_bound_alone_is_completed() -> None:
    assert parse_range({"from": "2026-11-01"}, NOW).last == date(2026, 11, 24)
    assert parse_range({"to": "2026-11-10"}, NOW).first == date(2026, 10, 12)
    future = parse_range({"from": "2026-12-05"}, NOW)
    assert future.first == future.last == date(2026, 12, 5)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "2026-13-01"}, "invalid_date"),
        ({"from": "2026-02-30"}, "invalid_date"),
        ({"to": "yesterday"}, "invalid_date"),
        ({"from": "2026-11-01T00:00:00Z"}, "invalid_date"),
        ({"from": "1999-12-31", "to": "2000-01-02"}, "invalid_date"),
        ({"from": "2026-11-10", "to": "2026-11-09"}, "invalid_range"),
        ({"from": "2025-01-01", "to": "2026-02-05"}, "range_too_long"),
        ({"tz": "Mars/Olympus_Mons"}, "unknown_timezone"),
        ({"tz": "../../etc/passwd"}, "unknown_timezone"),
        ({"tz": "x" * 100}, "unknown_timezone"),
        ({"form": "2026-11-01"}, "unknown_parameter"),
    ],
)
def test_bad_ranges_are_400s(params: dict[str, str], code: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_range(params, NOW)
    assert caught.value.code == code and caught.value.status == 400


def test_400_days_is_the_longest_range() -> None:
    query = parse_range({"from": "2025-10-21", "to": "2026-11-24"}, NOW)
    assert len(query.dates) == 400


def test_a_utc_range_reads_exactly_its_days() -> None:
    query = parse_range({"from": "2026-11-20", "to": "2026-11-22"}, NOW)
    assert query.utc_days() == ["2026-11-20", "2026-11-21", "2026-11-22"]


def test_a_zone_range_reads_the_utc_days_its_hours_fall_in() -> None:
    # Los Angeles (UTC-8 in November): local days start at 08:00 UTC.
    query = parse_range(
        {"from": "2026-11-20", "to": "2026-11-21", "tz": "America/Los_Angeles"}, NOW
    )
    assert query.utc_days() == ["2026-11-20", "2026-11-21", "2026-11-22"]
    assert query.local_slot("2026-11-20", 7) == (date(2026, 11, 19), 23)
    assert query.local_slot("2026-11-20", 8) == (date(2026, 11, 20), 0)


def test_half_hour_zones_take_the_local_hour_holding_most_of_the_bucket() -> None:
    query = parse_range({"tz": "Asia/Kolkata"}, NOW)  # UTC+5:30
    # 18:00-19:00 UTC is 23:30-00:30 local: its midpoint is local midnight, the next day.
    assert query.local_slot("2026-11-20", 18) == (date(2026, 11, 21), 0)
    assert query.local_slot("2026-11-20", 17) == (date(2026, 11, 20), 23)
    nepal = parse_range({"tz": "Asia/Kathmandu"}, NOW)  # UTC+5:45: 45 of 60 minutes in 6
    assert nepal.local_slot("2026-11-20", 0) == (date(2026, 11, 20), 6)


def test_daylight_saving_days_map_hour_by_hour() -> None:
    # Berlin leaves summer time on 2026-10-25: that local day has 25 hours.
    query = parse_range({"from": "2026-10-25", "to": "2026-10-25", "tz": "Europe/Berlin"}, NOW)
    hours = [
        (day, hour)
        for day in query.utc_days()
        for hour in range(24)
        if query.local_slot(day, hour)[0] == date(2026, 10, 25)
    ]
    assert len(hours) == 25


def test_page_parameters() -> None:
    page = parse_page({})
    assert (page.sort, page.limit, page.cursor) == ("views", 20, None)
    assert parse_page({"limit": "100", "cursor": "eyJhIjoxfQ=="}).limit == 100


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"limit": "-1"}, "invalid_limit"),
        ({"cursor": "not a cursor!"}, "invalid_cursor"),
        ({"cursor": "a" * 2000}, "invalid_cursor"),
        ({"sort": "date"}, "unsupported_sort"),
        ({"page": "2"}, "unknown_parameter"),
    ],
)
def test_bad_page_parameters_are_400s(params: dict[str, str], code: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_page(params)
    assert caught.value.code == code
