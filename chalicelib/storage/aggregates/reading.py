"""The readers' side of the ``aggregates`` table: what one stats request reads for one Target,
a post's lifetime Views, an artist's post listing and post count.

A stats request (``Readings.read``) costs the same whatever the number of Views:

1. one batch read: the Target's ``TOTAL`` (its activity bitmap says which closed Days have
   items, so nothing is asked for that does not exist), the close watermark and the
   stream position;
2. one Query of the series chunks holding the active closed Days in range: per Day totals,
   exact distinct Visitors, UTC hour buckets, first and last View;
3. one batch read of the pieces (breakdowns and sketches): the fewest blocks holding the
   closed Days wholly inside the local window, plus the one-Day piece of each closed Day
   the window cuts; with it the live items of the open Days (a Query of them instead when
   there are more than ``BATCHED_OPEN_DAYS``, e.g. a stalled close).

A Day is closed (at or before the watermark) or open, never both for a reader: closed Days
are read only from chunks and pieces, open Days only from live items, so nothing is
counted twice at the watermark edge.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.counts import DayCounters, Target
from chalicelib.days import day_name, day_number, days_between, instant_or_none, next_day
from chalicelib.storage.aggregates import closed, layout
from chalicelib.storage.aggregates.closed import Activity, DayRow, Piece
from chalicelib.storage.ports import AggregateStore, CounterUpdate

# The attribute of an artist's ``POSTS`` item counting its registered posts.
POSTS_COUNTER = "posts"
# Open Days read by key in the pieces' batch read up to this many (today, and yesterday
# until the close has run); more are read with one Query, which costs nothing for a Day
# without an item, where a batch read pays the minimum for every key asked.
BATCHED_OPEN_DAYS = 2
# A closed Day's ``unique`` holds this key (1) when its figures were imported from another
# system's daily rows (history.py, docs/adr/0013-imported-history.md): no sketch holds its
# Visitors and its distinct Visitors are that system's count, so a reader never calls
# uniques over it exact. Readers' ``DayCounters.unique`` carry it as the series row does.
IMPORTED = "imported"

# measure -> dimension -> value -> n
Breakdowns = dict[str, dict[str, dict[str, int]]]


@dataclass(frozen=True)
class Freshness:
    """How complete the figures read are: the close watermark and the live position."""

    watermark: str | None
    live_as_of: datetime | None = None


@dataclass(frozen=True)
class Held:
    """A piece read: the active closed Days of the range it holds, and its sketches of
    Visitors as stored (measure -> serialized HLL)."""

    days: tuple[str, ...]
    sketches: Mapping[str, bytes]


@dataclass
class Reading:
    """What one stats request read for one Target."""

    freshness: Freshness
    # Every UTC Day of the range that has counts, closed and open, in Day order. A closed
    # Day carries its hour buckets as the ``h`` breakdown, and, when the local window cuts
    # it, the other breakdowns of its one-Day piece.
    days: list[DayCounters] = field(default_factory=list)
    # The breakdowns of the pieces holding the closed Days wholly inside the window: they
    # count whole, never apportioned.
    interior: list[Breakdowns] = field(default_factory=list)
    # Every piece read (interior and cut Days), for distinct Visitors.
    held: list[Held] = field(default_factory=list)


@dataclass(frozen=True)
class PostLifetime:
    """One post's lifetime figures as of the last close (a row of an artist's listing)."""

    post_id: int
    views: int
    impressions: int
    first_view_at: str | None
    last_view_at: str | None


class Readings:
    items: AggregateStore

    def read(
        self, target: Target, days: Sequence[str], *, whole: Collection[str] | None
    ) -> Reading:
        """Every item the UTC ``days`` of a request need (module docstring). ``whole``: the
        Days wholly inside the local window (their breakdowns come from the fewest blocks);
        None reads no pieces, only the figures per Day (no breakdowns of closed Days, no
        sketches)."""
        pk = layout.pk_of(target)
        total_key, mark_key, pump_key = (
            (pk, layout.TOTAL_SK),
            layout.watermark_key(),
            layout.pump_state_key(),
        )
        found = self.items.get_items([total_key, mark_key, pump_key])
        mark = (found.get(mark_key) or {}).get("day")
        position = (found.get(pump_key) or {}).get("last_record_at")
        reading = Reading(
            Freshness(str(mark) if mark else None, instant_or_none(str(position) if position else None))
        )
        watermark = reading.freshness.watermark
        closed_days = [d for d in days if watermark is not None and d <= watermark]
        open_days = days[len(closed_days) :]
        active = _closed_activity(found.get(total_key), watermark)
        rows = self._series(pk, [d for d in closed_days if day_number(d) in active])

        piece_keys: list[tuple[str, str]] = []
        cut: set[str] = set()
        if whole is not None and rows:
            inside = set(whole)
            interior = [d for d in closed_days if d in inside]
            cut = set(rows) - set(interior)
            if interior:
                first, last = day_number(interior[0]), day_number(interior[-1])
                piece_keys += [
                    closed.piece_key(pk, level, start)
                    for level, start in closed.cover(first, last, active)
                ]
            piece_keys += [closed.piece_key(pk, 0, day_number(d)) for d in sorted(cut)]
        live_keys = (
            [(pk, layout.day_sk(d)) for d in open_days]
            if len(open_days) <= BATCHED_OPEN_DAYS
            else []
        )
        got = self.items.get_items(piece_keys + live_keys) if piece_keys or live_keys else {}
        if live_keys:
            live = [got[key] for key in live_keys if key in got]
        elif open_days:
            live = self.items.query_range(
                pk, layout.day_sk(open_days[0]), layout.day_sk(open_days[-1])
            )
        else:
            live = []

        by_day = {name: _day_from_row(name, row) for name, row in rows.items()}
        imported = {name for name, row in rows.items() if row.unique.get(IMPORTED)}
        for key in piece_keys:
            item = got.get(key)
            if item is None:
                continue
            piece = Piece.from_item(item)
            reading.held.append(_held(piece, active, days, imported))
            name = day_name(piece.start)
            if piece.level == 0 and name in cut:
                for measure, dimensions in piece.parts.items():
                    by_day[name].parts.setdefault(measure, {}).update(dimensions)
            else:
                reading.interior.append(piece.parts)
        for item in live:
            name = layout.day_of_sk(str(item["sk"]))
            by_day[name] = DayCounters.from_counts(name, item)
        reading.days = [by_day[name] for name in sorted(by_day)]
        return reading

    def _series(self, pk: str, days: Sequence[str]) -> dict[str, DayRow]:
        """The series rows of ``days`` (active closed Days, in order): one Query."""
        if not days:
            return {}
        first, last = closed.chunk_start(days[0]), closed.chunk_start(days[-1])
        rows: dict[str, DayRow] = {}
        for item in self.items.query_range(pk, layout.series_sk(first), layout.series_sk(last)):
            rows.update(closed.series_rows(item))
        wanted = set(days)
        return {name: row for name, row in rows.items() if name in wanted}

    def lifetime_views(self, post_id: int) -> int:
        """A post's lifetime Views: ``TOTAL`` (the closed Days it holds, through ``thru``)
        plus the live items of the Days after (all of them before its first close). Live
        items of Days ``TOTAL`` holds stay until their TTL: never added twice. One batch
        read and one Query."""
        pk = layout.pk_of(Target.post(post_id))
        key = (pk, layout.TOTAL_SK)
        total = self.items.get_items([key]).get(key) or {}
        thru = total.get("thru")
        after = next_day(str(thru)) if thru else ""
        live = self.items.query_range(pk, layout.day_sk(after), layout.day_sk("~"))
        return int(total.get("v", 0)) + sum(int(item.get("v", 0)) for item in live)

    def artist_posts(
        self,
        artist_id: str,
        limit: int,
        cursor: str | None,
        *,
        today: str,
        freshness: Freshness | None = None,
    ) -> tuple[list[PostLifetime], str | None]:
        """A page of the artist's posts, highest lifetime Views at the last close first, and
        the cursor of the next page (None on the last): one Query of the by_views index.

        Each row is all-time, as the counter is (``lifetime_views``): the figures of the
        last close plus the post's live items of the open Days (``_with_open_days``), so it
        is never below a period's figure. ``today``: the UTC Day now; ``freshness``: the
        watermark as the caller has just read it (else it is read with the live items)."""
        rows, next_cursor = self.items.query_artist_posts(artist_id, limit, cursor)
        posts = [_lifetime(row) for row in rows]
        return self._with_open_days(posts, today, freshness), next_cursor

    def _with_open_days(
        self, posts: list[PostLifetime], today: str, freshness: Freshness | None
    ) -> list[PostLifetime]:
        """The listed posts with their live items of the open Days added.

        Normally only today is open: one batch read of the posts' ``D#{today}`` items (with
        the watermark when not known), whatever their number of Days. While a finished Day
        is open too (before the close has run for it, or while it runs: it may already
        have taken that Day into a post's ``TOTAL`` and ``RANK``), the posts' ``TOTAL``
        items are read as well, with their live items of those Days, and each row is
        ``TOTAL`` plus the live Days after its ``thru``, so no Day is counted twice: one
        more batch read, or a Query per post past ``BATCHED_OPEN_DAYS`` open Days (a
        stalled close)."""
        if not posts:
            return posts
        pks = [layout.pk_of(Target.post(post.post_id)) for post in posts]
        mark = None if freshness is None else freshness.watermark
        if mark is not None and mark >= today:
            return posts  # nothing is open (a clock behind the close's)
        mark_key = layout.watermark_key()
        today_keys = [(pk, layout.day_sk(today)) for pk in pks]
        got = self.items.get_items(
            today_keys if freshness is not None else [*today_keys, mark_key]
        )
        if freshness is None:
            day = (got.get(mark_key) or {}).get("day")
            mark = str(day) if day else None
            if mark is not None and mark >= today:
                return posts
        live: dict[str, list[Mapping[str, Any]]] = {
            pk: [got[key]] for pk, key in zip(pks, today_keys, strict=True) if key in got
        }
        if mark is not None and next_day(mark) == today:
            return [_with_live(post, live.get(pk, ())) for post, pk in zip(posts, pks, strict=True)]

        yesterday = day_name(day_number(today) - 1)
        total_keys = [(pk, layout.TOTAL_SK) for pk in pks]
        finished = days_between(next_day(mark), yesterday) if mark is not None else None
        if finished is not None and len(finished) < BATCHED_OPEN_DAYS:
            day_keys = [(pk, layout.day_sk(d)) for pk in pks for d in finished]
            found = self.items.get_items(total_keys + day_keys)
            for key in day_keys:
                if key in found:
                    live.setdefault(key[0], []).append(found[key])
        else:
            found = self.items.get_items(total_keys)
            low = layout.day_sk(next_day(mark) if mark is not None else "")
            for pk in pks:
                live.setdefault(pk, []).extend(
                    self.items.query_range(pk, low, layout.day_sk(yesterday))
                )
        rows = []
        for pk, key in zip(pks, total_keys, strict=True):
            total = found.get(key) or {}
            thru = str(total.get("thru") or "")
            after = [item for item in live.get(pk, ()) if layout.day_of_sk(str(item["sk"])) > thru]
            rows.append(_with_live(_lifetime({**total, "pk": pk}), after))
        return rows

    def artist_post_count(self, artist_id: str) -> int:
        """How many posts the artist has registered (never below zero). One batch read."""
        key = layout.artist_posts_key(artist_id)
        item = self.items.get_items([key]).get(key) or {}
        return max(0, int(item.get(POSTS_COUNTER, 0)))

    def add_artist_posts(self, artist_id: str, delta: int) -> None:
        """Move the artist's registered-post count by ``delta`` (one atomic ADD)."""
        pk, sk = layout.artist_posts_key(artist_id)
        self.items.add_counters([CounterUpdate(pk, sk, add={POSTS_COUNTER: delta})])


def _closed_activity(total: Mapping[str, Any] | None, watermark: str | None) -> Activity:
    """The Target's active closed Days, as of the watermark read.

    ``TOTAL`` may already hold a Day the close is still closing (the watermark moves last):
    such a Day is open for this request, and the blocks its close builds are not asked for.
    """
    if watermark is None:
        return Activity()
    mark = day_number(watermark)
    return Activity(n for n in Activity.from_item(total).days if n <= mark)


def _day_from_row(name: str, row: DayRow) -> DayCounters:
    """A closed Day's figures from its series row, hour buckets as the ``h`` breakdown."""
    return DayCounters(
        day=name,
        closed=True,
        totals=dict(row.totals),
        parts={measure: {"h": dict(hours)} for measure, hours in row.hours.items()},
        unique=dict(row.unique),
        first_at=row.first_at,
        last_at=row.last_at,
    )


def _held(
    piece: Piece, active: Activity, days: Sequence[str], imported: Collection[str] = ()
) -> Held:
    """A piece's active closed Days within the range, and its sketches. Imported Days are
    left out: the piece's sketch does not hold their Visitors (a reader estimates them as
    Days without a sketch)."""
    first, last = piece.days
    in_range = set(days)
    held = tuple(
        name
        for n in range(first, last + 1)
        if n in active and (name := day_name(n)) in in_range and name not in imported
    )
    return Held(held, dict(piece.sketches))


def _lifetime(row: Mapping[str, Any]) -> PostLifetime:
    first, last = row.get("first_at"), row.get("last_at")
    return PostLifetime(
        post_id=layout.target_of(str(row["pk"])).post_id,
        views=int(row.get("v", 0)),
        impressions=int(row.get("i", 0)),
        first_view_at=None if first is None else str(first),
        last_view_at=None if last is None else str(last),
    )


def _with_live(post: PostLifetime, live: Iterable[Mapping[str, Any]]) -> PostLifetime:
    """A post's figures with its live ``D#`` items of open Days added."""
    views, impressions = post.views, post.impressions
    first, last = post.first_view_at, post.last_view_at
    for item in live:
        views += int(item.get("v", 0))
        impressions += int(item.get("i", 0))
        if item.get("first_at"):
            at = str(item["first_at"])
            first = at if first is None else min(first, at)
        if item.get("last_at"):
            at = str(item["last_at"])
            last = at if last is None else max(last, at)
    return PostLifetime(post.post_id, views, impressions, first, last)
