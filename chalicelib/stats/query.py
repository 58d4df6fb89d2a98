"""Stats queries: the edge validation of ``from``/``to``/``tz`` and of listing parameters.

A query names local calendar dates in an IANA zone; ``window`` turns it into the UTC
instants [start, end) and the UTC Days whose hourly counters can fall inside.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.errors import BadRequest

DEFAULT_DAYS = 30
MAX_DAYS = 400
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR = 1024
SORTS = ("views",)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CURSOR = re.compile(r"^[A-Za-z0-9_\-=]+$")
_LIMIT = re.compile(r"^[0-9]{1,4}$")
# Zone names are path-like; refusing anything else keeps zoneinfo away from odd file paths.
_ZONE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,2}$")
HALF_HOUR = timedelta(minutes=30)


@dataclass(frozen=True)
class StatsQuery:
    """A validated range: local dates ``first``..``last`` (inclusive) in zone ``tz_name``."""

    first: date
    last: date
    tz_name: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.tz_name)

    @property
    def dates(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @cached_property
    def window(self) -> frozenset[date]:
        """The local dates of the range, for membership tests."""
        return frozenset(self.dates)

    @property
    def start(self) -> datetime:
        """The window's first instant (local midnight of ``first``), in UTC."""
        return datetime.combine(self.first, time(), tzinfo=self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The instant just after the window (local midnight after ``last``), in UTC."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=self.tz).astimezone(
            UTC
        )

    def utc_days(self) -> list[str]:
        """The UTC Days holding an hour whose midpoint lies in the window (see ``local_slot``)."""
        first_hour = _ceil_hour(self.start - HALF_HOUR)
        last_hour = _ceil_hour(self.end - HALF_HOUR) - timedelta(hours=1)
        day = first_hour.date()
        out = []
        while day <= last_hour.date():
            out.append(day.isoformat())
            day += timedelta(days=1)
        return out

    def local_slot(self, day: str, hour: int) -> tuple[date, int]:
        """The local (date, hour) a UTC hour bucket counts in: where its midpoint falls.

        Whole-hour zones map exactly; in half- and quarter-hour zones a bucket straddles two
        local hours and goes to the one that holds the larger part of it (ties go later).
        """
        midpoint = datetime.combine(date.fromisoformat(day), time(hour, 30), tzinfo=UTC)
        local = midpoint.astimezone(self.tz)
        return local.date(), local.hour


@dataclass(frozen=True)
class PageQuery:
    sort: str
    limit: int
    cursor: str | None


def _ceil_hour(at: datetime) -> datetime:
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + timedelta(hours=1)


def _bad(code: str, message: str) -> BadRequest:
    return BadRequest(message, code=code)


def _only(params: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise _bad(
            "unknown_parameter",
            f"unknown query parameter(s): {', '.join(unknown)} (allowed: {', '.join(allowed)})",
        )


def parse_zone(text: str | None) -> str:
    if text is None or text == "":
        return "UTC"
    if len(text) > 64 or not _ZONE.match(text):
        raise _bad(
            "unknown_timezone", f"tz must be an IANA time zone such as Europe/Berlin (got {text!r})"
        )
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _bad("unknown_timezone", f"unknown time zone {text!r}") from None
    return text


def parse_date(name: str, text: str) -> date:
    if not _DATE.match(text):
        raise _bad("invalid_date", f"{name} must be an ISO date YYYY-MM-DD (got {text!r})")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise _bad("invalid_date", f"{name} is not a calendar date (got {text!r})") from None
    if not 2000 <= day.year <= 9998:
        raise _bad("invalid_date", f"{name} must lie between 2000-01-01 and 9998-12-31")
    return day


def parse_range(
    params: Mapping[str, str] | None,
    now: datetime,
    *,
    allow_tz: bool = True,
    extra: tuple[str, ...] = (),
) -> StatsQuery:
    """``from``/``to``/``tz`` (all optional): by default the last 30 days ending today in ``tz``."""
    params = dict(params or {})
    _only(params, ("from", "to", "tz", *extra) if allow_tz else ("from", "to", *extra))
    tz_name = parse_zone(params.get("tz"))
    today = now.astimezone(ZoneInfo(tz_name)).date()
    raw_first, raw_last = params.get("from") or None, params.get("to") or None
    last = parse_date("to", raw_last) if raw_last else None
    first = parse_date("from", raw_first) if raw_first else None
    if last is None:
        last = today if first is None or first <= today else first
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise _bad("invalid_range", f"from ({first}) is after to ({last})")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise _bad("range_too_long", f"the range has {days} days; at most {MAX_DAYS} allowed")
    return StatsQuery(first, last, tz_name)


def parse_page(params: Mapping[str, str] | None) -> PageQuery:
    """``sort``/``limit``/``cursor`` of a listing."""
    params = dict(params or {})
    _only(params, ("sort", "limit", "cursor"))
    sort = params.get("sort") or "views"
    if sort not in SORTS:
        raise _bad("unsupported_sort", f"sort must be one of {', '.join(SORTS)} (got {sort!r})")
    raw_limit = params.get("limit") or str(DEFAULT_LIMIT)
    # ASCII digits only: "²" and "①" pass isdigit() yet int() refuses them.
    if not _LIMIT.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise _bad(
            "invalid_limit", f"limit must be an integer from 1 to {MAX_LIMIT} (got {raw_limit!r})"
        )
    cursor = params.get("cursor") or None
    if cursor is not None and (len(cursor) > MAX_CURSOR or not _CURSOR.match(cursor)):
        raise _bad("invalid_cursor", "cursor is not one this API handed out")
    return PageQuery(sort, int(raw_limit), cursor)
