"""Days and instants as VTS names them: a Day is a UTC date ``YYYY-MM-DD``; instants travel
as ISO 8601 text with milliseconds and ``Z``. Pure arithmetic, shared by every package."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

EPOCH = date(1970, 1, 1)


def day_of(at: datetime) -> str:
    """The UTC Day (``YYYY-MM-DD``) an instant falls in."""
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def instant_or_none(text: str | None) -> datetime | None:
    """An instant from stored text; None when there is none or it is not an instant."""
    if not text:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


def day_number(day: str) -> int:
    """Days since 1970-01-01 (aligned blocks of Days are counted from there)."""
    return (date.fromisoformat(day) - EPOCH).days


def day_name(number: int) -> str:
    return (EPOCH + timedelta(days=number)).isoformat()


def next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def days_between(first: str, last: str) -> list[str]:
    """first..last inclusive (empty when first > last)."""
    return [day_name(n) for n in range(day_number(first), day_number(last) + 1)]


def day_end(day: str) -> datetime:
    """The first instant after the Day."""
    return datetime.combine(date.fromisoformat(day), time.min, tzinfo=UTC) + timedelta(days=1)
