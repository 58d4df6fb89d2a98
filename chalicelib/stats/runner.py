"""The stats runner: spread one Target's Days (read by storage, ``Aggregates.read``) over
the asked local dates, zero-fill the series, estimate distinct Visitors and build PostStats
/ ArtistStats / SiteStats (DESIGN §3).

Closed Days come with exact distinct Visitors and hour buckets; open Days with live counts
only. Breakdowns of Days the local window cuts are apportioned by their Views inside it;
those of Days wholly inside count whole. Distinct Visitors over a range are a union of the
pieces' HLL sketches (stats/sketches.py), open Days added at the recent rate of novelty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from chalicelib.clock import Clock
from chalicelib.counts import OTHER, DayCounters, Target, TargetKind, apportion
from chalicelib.days import instant_or_none, iso
from chalicelib.stats import sketches
from chalicelib.stats.query import StatsQuery
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.aggregates.reading import IMPORTED, Breakdowns, Freshness, Held, Reading

TOP_COUNTRIES = 10
TOP_REFERRERS = 10
DEVICES = ("desktop", "mobile", "tablet", "player")
SOURCES = ("web", "widget", "api", "player")
PLAY_ORDERS = ("0", "1", "2")
# Breakdown dimensions reported per measure (``h`` is reported as ``by_hour_local``).
REPORTED = (
    ("country", "c"),
    ("device", "d"),
    ("source", "s"),
    ("channel", "ch"),
    ("play_order", "po"),
    ("referrer", "r"),
)
# The value under which a piece sums the long tail of an open-ended breakdown.
CAPPED_TAIL = OTHER
# An hour bucket with no hour counters at all is placed at midday UTC of its Day.
FALLBACK_HOUR = 12
# The novelty of an open Day's Visitors is measured on the closed pieces holding the last
# (up to) this many Days of the range.
RECENT_DAYS = 3


@dataclass
class _Spread:
    """One measure's counters spread over the window's local dates."""

    in_window: dict[str, int] = field(default_factory=dict)  # UTC Day -> count in window
    daily: dict[date, int] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    parts: dict[str, dict[str, int]] = field(default_factory=dict)
    share: dict[str, dict[date, int]] = field(default_factory=dict)  # Day -> local date -> n
    hours_in: dict[str, list[int]] = field(default_factory=dict)  # Day -> UTC hours in window

    @property
    def total(self) -> int:
        return sum(self.in_window.values())


@dataclass(frozen=True)
class Estimate:
    value: int
    approximate: bool


def top(counts: Mapping[str, int], n: int, *, other: bool) -> dict[str, int]:
    """The ``n`` largest counts (ties by key), the rest summed as ``other`` when asked."""
    ranked = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    out = dict(ranked[:n])
    rest = sum(v for _, v in ranked[n:])
    if other and rest:
        out["other"] = rest
    return out


def _add(into: dict[str, int], counts: Mapping[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def spread(
    query: StatsQuery, days: Iterable[DayCounters], measure: str, whole: Iterable[Breakdowns] = ()
) -> _Spread:
    """Place each UTC hour bucket of ``measure`` at the local date and hour of its midpoint.

    A Day's breakdowns count pro rata of its Views inside the window; the ``whole``
    breakdowns (of pieces holding Days wholly inside) count as they are.
    """
    window = query.window
    out = _Spread()
    for day in days:
        total = day.total(measure)
        if total <= 0:
            continue
        inside = 0
        share: dict[date, int] = {}
        hours_in: list[int] = []
        bucketed = 0
        for hour_text, n in day.breakdown(measure, "h").items():
            if not hour_text.isdigit() or not 0 <= int(hour_text) < 24:
                continue
            hour = int(hour_text)
            bucketed += n
            local_date, local_hour = query.local_slot(day.day, hour)
            if local_date in window:
                inside += n
                share[local_date] = share.get(local_date, 0) + n
                out.hours[local_hour] += n
                hours_in.append(hour)
        if total > bucketed:
            # Counters without hour buckets (should not happen): placed at midday UTC.
            local_date, _ = query.local_slot(day.day, FALLBACK_HOUR)
            if local_date in window:
                inside += total - bucketed
                share[local_date] = share.get(local_date, 0) + total - bucketed
        if not inside:
            continue
        inside = min(inside, total)
        out.in_window[day.day] = inside
        out.share[day.day] = share
        out.hours_in[day.day] = sorted(hours_in)
        for local_date, n in share.items():
            out.daily[local_date] = out.daily.get(local_date, 0) + n
        for _, dimension in REPORTED:
            counts = day.breakdown(measure, dimension)
            if counts:
                _add(out.parts.setdefault(dimension, {}), apportion(counts, inside, total))
    for parts in whole:
        for _, dimension in REPORTED:
            held_counts = parts.get(measure, {}).get(dimension)
            if held_counts:
                _add(out.parts.setdefault(dimension, {}), held_counts)
    return out


class _Uniques:
    """Distinct Visitors (measure ``v``) or signed-in Visitors (``av``) of one target."""

    def __init__(
        self,
        measure: str,
        days: Sequence[DayCounters],
        spread_: _Spread,
        single_post: bool,
        held: Sequence[Held],
    ) -> None:
        self.measure = measure
        self.days = {d.day: d for d in days}
        self.spread = spread_
        self.single_post = single_post
        self.held = held
        closed_days = [
            d
            for d in days
            if d.closed
            and measure in d.unique
            and d.total(measure) > 0
            and not d.unique.get(IMPORTED)
        ]
        counted = sum(d.total(measure) for d in closed_days)
        # Open Days of an artist or the site: Views/Visitor as on the closed Days read (VTS's
        # own: an imported artist's or site's Day sums its posts' distinct viewers).
        self.ratio = sum(d.unique[measure] for d in closed_days) / counted if counted else 1.0

    def day(self, day: DayCounters) -> tuple[float, bool]:
        """A whole UTC Day's distinct Visitors, and whether that figure is exact."""
        if day.unique.get(IMPORTED):
            # An imported Day: the other system's count (for an artist or the site, the sum
            # of its posts'), never exact, and no sketch holds its Visitors.
            return float(day.unique.get(self.measure, day.total(self.measure))), False
        if self.single_post:
            # Views are unique per (Visitor, Post, Day): one post's Day has uv = v.
            return float(day.total(self.measure)), True
        if day.closed and self.measure in day.unique:
            return float(day.unique[self.measure]), True
        return day.total(self.measure) * self.ratio, False

    def _part(self, day_name: str, count: int) -> float:
        day = self.days[day_name]
        value, _ = self.day(day)
        total = day.total(self.measure)
        return value * count / total if total else 0.0

    def daily(self, local_date: date) -> Estimate:
        parts = [
            (name, share[local_date])
            for name, share in self.spread.share.items()
            if share.get(local_date)
        ]
        if not parts:
            return Estimate(0, False)
        value = sum(self._part(name, n) for name, n in parts)
        (name, n), *others = parts
        exact = (
            not others and n == self.days[name].total(self.measure) and self.day(self.days[name])[1]
        )
        return Estimate(round(value), not exact)

    def range(self) -> Estimate:
        inside = self.spread.in_window
        if not inside:
            return Estimate(0, False)
        if len(inside) == 1:
            [(name, n)] = inside.items()
            value, exact = self.day(self.days[name])
            if n == self.days[name].total(self.measure):
                return Estimate(round(value), not exact)
        # The pieces with a sound sketch of this measure and a Day counted in the window, in
        # Day order; every active closed Day is in at most one piece. A damaged sketch is
        # left out.
        found = [
            (days, sketch)
            for held in self.held
            if self.measure in held.sketches
            and (days := tuple(d for d in held.days if d in inside))
            and (sketch := sketches.decode(held.sketches[self.measure])) is not None
        ]
        with_sketch = [name for days, _ in found for name in days]
        union_all = sketches.union_estimate(sketch for _, sketch in found) or 0.0
        union = union_all
        whole = sum(self.day(self.days[name])[0] for name in with_sketch)
        scaled = sum(self._part(name, inside[name]) for name in with_sketch)
        if whole > scaled > 0:
            union *= scaled / whole  # edge Days only partly in the local window
        sketched = set(with_sketch)
        rest = sum(self._part(name, n) for name, n in inside.items() if name not in sketched)
        novelty = self._novelty(found, union_all) if rest else 1.0
        estimate = union + novelty * rest
        parts = [self._part(name, n) for name, n in inside.items()]
        estimate = min(max(estimate, max(parts)), sum(parts))
        return Estimate(round(estimate), True)

    def _novelty(self, found: Sequence[tuple[tuple[str, ...], Any]], union_all: float) -> float:
        """The share of a recent Day's Visitors that were new to the range: how much the
        union grew with the pieces of the last (up to) three closed Days, per distinct
        Visitor of those Days (``union_all``: the union of them all). Open Days (no sketch
        yet) are assumed to bring new Visitors at that rate."""
        if len(found) < 2:
            return 1.0
        ordered = sorted(found, key=lambda piece: piece[0][0])
        # The last piece, and the ones before it while they hold at most RECENT_DAYS Days
        # together; never the first piece (growth is measured against something).
        cut = len(ordered) - 1
        held_days = len(ordered[cut][0])
        while cut > 1 and held_days + len(ordered[cut - 1][0]) <= RECENT_DAYS:
            cut -= 1
            held_days += len(ordered[cut][0])
        before, recent = ordered[:cut], ordered[cut:]
        grown = union_all - (sketches.union_estimate(sketch for _, sketch in before) or 0.0)
        recent_uniques = sum(self.day(self.days[name])[0] for days, _ in recent for name in days)
        if recent_uniques <= 0:
            return 1.0
        return min(1.0, max(0.0, grown / recent_uniques))


def fresh_as_of(query_days: Sequence[str], freshness: Freshness, now: datetime) -> datetime:
    """The newest instant the counters read are known complete to.

    A range of closed Days is final up to the end of the watermark Day; a range with open
    Days is as fresh as the live counters (the stream position when known, else now).
    """
    mark = freshness.watermark
    if mark and query_days and query_days[-1] <= mark:
        end = datetime.combine(date.fromisoformat(mark) + timedelta(days=1), time(), tzinfo=UTC)
        return min(end, now)
    return min(freshness.live_as_of or now, now)


def _block(
    query: StatsQuery, reading: Reading, views: str, impressions: str, single_post: bool
) -> tuple[dict[str, Any], _Spread]:
    """The totals, breakdowns and daily series for one pair of measures (all or signed-in),
    and the Views' spread they came from."""
    seen = spread(query, reading.days, views, reading.interior)
    shown = spread(query, reading.days, impressions, reading.interior)
    uniques = _Uniques(views, reading.days, seen, single_post, reading.held)
    unique = uniques.range()
    out: dict[str, Any] = {
        "views": seen.total,
        "impressions": shown.total,
        "unique_visitors": unique.value,
        "unique_visitors_approximate": unique.approximate,
    }
    for prefix, spread_ in (("by_", seen), ("impressions_by_", shown)):
        for name, dimension in REPORTED:
            counts = spread_.parts.get(dimension, {})
            if dimension == "c":
                value: dict[str, int] = top(counts, TOP_COUNTRIES, other=True)
            elif dimension == "r":
                # Pieces fold a long tail into "~other": not a domain, never ranked.
                named = {k: n for k, n in counts.items() if k != CAPPED_TAIL}
                value = top(named, TOP_REFERRERS, other=False)
            elif dimension == "d":
                value = {k: counts.get(k, 0) for k in DEVICES}
            elif dimension == "s":
                value = {k: counts.get(k, 0) for k in SOURCES}
            elif dimension == "po":
                value = {k: counts.get(k, 0) for k in PLAY_ORDERS}
                value.update({k: n for k, n in counts.items() if k not in PLAY_ORDERS})
            else:
                value = top(counts, len(counts), other=False)
                if CAPPED_TAIL in value:
                    value["other"] = value.pop(CAPPED_TAIL)
            out[f"{prefix}{name}"] = value
        out[f"{prefix}hour_local"] = list(spread_.hours)
    daily = []
    daily_approximate = False
    for local_date in query.dates:
        estimate = uniques.daily(local_date)
        daily_approximate |= estimate.approximate
        daily.append(
            {
                "date": local_date.isoformat(),
                "views": seen.daily.get(local_date, 0),
                "impressions": shown.daily.get(local_date, 0),
                "unique_visitors": estimate.value,
            }
        )
    out["daily"] = daily
    out["daily_unique_visitors_approximate"] = daily_approximate
    return out, seen


def _view_bounds(
    query: StatsQuery, days: Sequence[DayCounters], seen: _Spread
) -> tuple[str | None, str | None]:
    """First and last View in the window: the stored instants, or, on a Day only partly
    inside the window, the edge of its first/last hour bucket inside (hour precision)."""
    firsts: list[tuple[datetime, str]] = []
    lasts: list[tuple[datetime, str]] = []
    for day in days:
        inside = seen.in_window.get(day.day, 0)
        if not inside:
            continue
        whole = inside == day.total("v") and len(seen.share.get(day.day, {})) == 1
        start = datetime.combine(date.fromisoformat(day.day), time(), tzinfo=UTC)
        hours = seen.hours_in.get(day.day) or [FALLBACK_HOUR]
        for stored, pick, bucket in (
            (day.first_at, firsts, start + timedelta(hours=hours[0])),
            (day.last_at, lasts, start + timedelta(hours=hours[-1] + 1, milliseconds=-1)),
        ):
            at = instant_or_none(stored)
            if at is not None and (whole or query.start <= at < query.end):
                pick.append((at, str(stored)))
            else:
                clipped = min(max(bucket, query.start), query.end - timedelta(milliseconds=1))
                pick.append((clipped, iso(clipped)))
    first = min(firsts)[1] if firsts else None
    last = max(lasts)[1] if lasts else None
    return first, last


def build_stats(
    query: StatsQuery, reading: Reading, *, kind: TargetKind, now: datetime
) -> dict[str, Any]:
    """PostStats / the shared part of ArtistStats and SiteStats, from what was read."""
    single_post = kind == "post"
    everyone, seen = _block(query, reading, "v", "i", single_post)
    signed_in, _ = _block(query, reading, "av", "ai", single_post)
    first, last = _view_bounds(query, reading.days, seen)
    return {
        "from": query.first.isoformat(),
        "to": query.last.isoformat(),
        "tz": query.tz_name,
        "computed_at": iso(now),
        "fresh_as_of": iso(fresh_as_of(query.utc_days(), reading.freshness, now)),
        **everyone,
        "authenticated": signed_in,
        "first_view_at": first,
        "last_view_at": last,
    }


def wholly_inside(query: StatsQuery, day: str) -> bool:
    """Whether every hour bucket of the UTC ``day`` counts inside the local window."""
    return all(query.local_slot(day, hour)[0] in query.window for hour in range(24))


class StatsRunner:
    """Answers for one Target over the ``Aggregates`` facade."""

    def __init__(self, aggregates: Aggregates, clock: Clock) -> None:
        self._aggregates = aggregates
        self._clock = clock

    def read(self, target: Target, query: StatsQuery, *, pieces: bool = True) -> Reading:
        """What the range needs; without ``pieces`` only the figures per Day (no breakdowns
        of closed Days, no sketches)."""
        days = query.utc_days()
        whole = [d for d in days if wholly_inside(query, d)] if pieces else None
        return self._aggregates.read(target, days, whole=whole)

    def stats(self, target: Target, query: StatsQuery) -> dict[str, Any]:
        reading = self.read(target, query)
        return build_stats(query, reading, kind=target.kind, now=self._clock.now())

    def daily(self, target: Target, query: StatsQuery) -> dict[str, Any]:
        """Only the daily series (the CSV): series chunks and open Days, no pieces."""
        reading = self.read(target, query, pieces=False)
        single_post = target.kind == "post"
        return {
            "everyone": _block(query, reading, "v", "i", single_post)[0],
            "signed_in": _block(query, reading, "av", "ai", single_post)[0],
        }
