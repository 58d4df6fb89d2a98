"""The daily close: every finished Day past the watermark, recounted exactly from raw events.

Each post active that Day (its ``DAY#{day}`` markers) is recounted from its raw events, and
its artist and the site from the same events. Then, for every target (post, artist, site)
with any stored look that Day, in an order that any crash can resume from (the format:
``chalicelib/storage/aggregates/closed.py``, docs/adr/0008-closed-pieces.md):

1. its level-0 piece ``B0#{day}`` (breakdowns without hours, sketches of its Visitors);
2. its row in the series chunk ``S#{chunk}`` (totals, exact uniques, hours, first/last);
3. the blocks that become readable now (``closed.to_build``), merged from existing pieces;
4. its ``TOTAL`` takes the Day once (sums, activity bitmap; guarded by ``thru``), and a
   post's ``RANK`` (its by_views entry) takes the new lifetime Views;
5. the watermark moves to the Day (never back).

Posts go first, then artists and the site. Every write is an idempotent overwrite skipped
when the stored item already equals it, so a second close of a Day writes nothing; live
``D#`` items are never touched (readers use them only past the watermark, and they expire
with the Day's raw events). The run stops inside its time budget and resumes at the first
Day not yet closed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from chalicelib.clock import Clock
from chalicelib.days import day_of
from chalicelib.errors import VTSError
from chalicelib.model import ViewEvent
from chalicelib.netcap import Caps, within_caps
from chalicelib.rollup import counters
from chalicelib.rollup.counters import Tally
from chalicelib.rollup.status import watermark_age_emf
from chalicelib.storage.aggregates import closed, layout
from chalicelib.storage.ports import AggregateStore, EventStore
from chalicelib.storage.tables import RANK_ROW_ATTRIBUTES

logger = logging.getLogger("vts.rollup")

Key = tuple[str, str]
_RACE_RETRIES = 5  # rounds of read-modify-write when another writer changed the item first


@dataclass
class Recount:
    """One target's exact Day: counters, and the Visitors behind its Views."""

    tally: Tally = field(default_factory=Tally)
    visitors: set[str] = field(default_factory=set)
    signed_in: set[str] = field(default_factory=set)
    # Visitors known only by number (a Day kept from live counts: one per View of a post).
    unnamed: int = 0
    unnamed_signed_in: int = 0

    def add(self, event: ViewEvent) -> None:
        self.tally.add(event)
        if event.intent == "view":
            self.visitors.add(event.visitor)
            if event.authenticated:
                self.signed_in.add(event.visitor)

    @property
    def looked(self) -> bool:
        """Whether the target had any stored look (View or Impression) that Day."""
        return bool(self.tally.counts["v"] or self.tally.counts["i"])

    def piece(self, number: int) -> closed.Piece:
        """The Day's level-0 piece: breakdowns without the hour, sketches of named Visitors."""
        parts: dict[str, dict[str, dict[str, int]]] = {}
        for measure, dimension, value, n in _breakdowns(self.tally.counts):
            if dimension != "h":
                parts.setdefault(measure, {}).setdefault(dimension, {})[value] = n
        piece = closed.Piece(
            level=0,
            start=number,
            totals=counters.measures_only(self.tally.counts),
            parts=closed.cap_parts(parts),
            first_at=self.tally.first_at,
            last_at=self.tally.last_at,
        )
        for measure, visitors in (("v", self.visitors), ("av", self.signed_in)):
            if visitors:
                piece.sketches[measure] = closed.sketch_of(visitors, closed.SKETCHES[measure][1])
        return piece

    def row(self) -> closed.DayRow:
        """The Day's row in its series chunk."""
        hours: dict[str, dict[str, int]] = {}
        for measure, dimension, value, n in _breakdowns(self.tally.counts):
            if dimension == "h":
                hours.setdefault(measure, {})[value] = n
        return closed.DayRow(
            totals=counters.measures_only(self.tally.counts),
            unique={
                "v": len(self.visitors) + self.unnamed,
                "av": len(self.signed_in) + self.unnamed_signed_in,
            },
            hours=hours,
            first_at=self.tally.first_at,
            last_at=self.tally.last_at,
        )


def _breakdowns(counts: Mapping[str, int]) -> list[tuple[str, str, str, int]]:
    """(measure, dimension, value, n) of every non-zero breakdown counter."""
    out = []
    for name, n in counts.items():
        split = counters.split_breakdown(name)
        if split is not None and n:
            out.append((*split, int(n)))
    return out


@dataclass
class CloseReport:
    closed_days: list[str] = field(default_factory=list)
    posts: int = 0
    events: int = 0
    writes: int = 0
    watermark: str | None = None
    pending_days: int = 0
    stopped: str | None = None  # "budget" when it ran out of time (the next run resumes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "closed_days": self.closed_days,
            "posts": self.posts,
            "events": self.events,
            "writes": self.writes,
            "watermark": self.watermark,
            "pending_days": self.pending_days,
            "stopped": self.stopped,
        }


class _OutOfTime(Exception):
    pass


class CloseRaced(VTSError):
    """Another writer kept changing a target's item (a second close running at the same
    time): this run stops before the watermark moves, and the next one resumes the Day."""

    code = "close_raced"


def emf_to_stdout(line: str) -> None:
    """EMF metrics are log lines on stdout: in Lambda, CloudWatch turns them into metrics."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def days_between(first: str, last: str) -> list[str]:
    """first..last inclusive (empty when first > last)."""
    out = []
    current = date.fromisoformat(first)
    end = date.fromisoformat(last)
    while current <= end:
        out.append(current.isoformat())
        current += timedelta(days=1)
    return out


def last_finished_day(now: datetime, grace_s: int) -> str:
    """The newest Day whose end lies ``grace_s`` or more in the past."""
    running = date.fromisoformat(day_of(now - timedelta(seconds=grace_s)))
    return (running - timedelta(days=1)).isoformat()


class DayCloser:
    def __init__(
        self,
        store: AggregateStore,
        events: EventStore,
        clock: Clock,
        *,
        grace_s: int,
        budget_s: float,
        ttl_days: int,
        stage: str = "dev",
        monotonic: Callable[[], float] = time.monotonic,
        emit: Callable[[str], None] | None = None,
        caps: Caps | None = None,
    ) -> None:
        self._caps = caps if caps is not None else Caps(20, 200)
        self._stage = stage
        self._emit = emit
        self._store = store
        self._events = events
        self._clock = clock
        self._grace_s = grace_s
        self._budget_s = budget_s
        self._ttl_days = ttl_days
        self._monotonic = monotonic

    # ---- which Days ---------------------------------------------------------------------------

    def pending_days(self, now: datetime, through: str | None = None) -> list[str]:
        """Finished Days past the watermark, oldest first (up to ``through`` if given)."""
        last = last_finished_day(now, self._grace_s)
        if through is not None:
            last = min(last, through)
        watermark = self._store.get_watermark()
        first = next_day(watermark) if watermark is not None else self._first_day(now, last)
        return days_between(first, last)

    def _first_day(self, now: datetime, last: str) -> str:
        """Before the first close: the first Day with live counters (every counted look
        makes a site Day), but none older than raw events live; else just ``last``."""
        site = self._store.query_range(layout.SITE_AGGREGATE_PK, layout.day_sk(""), layout.day_sk("~"))
        if not site:
            return last
        earliest = layout.day_of_aggregate_sk(str(site[0]["sk"]))
        return max(earliest, day_of(now - timedelta(days=self._ttl_days)))

    # ---- the run ------------------------------------------------------------------------------

    def run(
        self,
        now: datetime | None = None,
        through: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> CloseReport:
        """Close every pending Day in order until done or out of budget."""
        now = now or self._clock.now()
        deadline = self._monotonic() + self._budget_s
        report = CloseReport()
        days = self.pending_days(now, through)
        report.pending_days = len(days)
        for n, day in enumerate(days):
            try:
                self.close_day(day, now, report, deadline)
            except _OutOfTime:
                report.stopped = "budget"
                logger.warning("close: out of budget in %s; the next run resumes there", day)
                break
            self._store.advance_watermark(day)
            report.closed_days.append(day)
            report.pending_days -= 1
            if progress:
                progress(n + 1, len(days))
        report.watermark = self._store.get_watermark()
        metric = watermark_age_emf(self._stage, report.watermark, now)
        if metric and self._emit is not None:
            self._emit(metric)
        return report

    def _check(self, deadline: float) -> None:
        if self._monotonic() >= deadline:
            raise _OutOfTime

    def close_day(
        self,
        day: str,
        now: datetime,
        report: CloseReport | None = None,
        deadline: float = float("inf"),
    ) -> None:
        report = report if report is not None else CloseReport()
        markers = self._store.query_range(layout.marker_pk(day), "P#", "P#~")
        posts = sorted({layout.post_of_marker_sk(str(m["sk"])) for m in markers})
        recounts: dict[str, Recount] = {}
        site = recounts[layout.SITE_AGGREGATE_PK] = Recount()
        post_pks = [layout.post_aggregate_pk(p) for p in posts]
        live = self._store.get_items((pk, layout.day_sk(day)) for pk in post_pks)
        for post_id, pk in zip(posts, post_pks, strict=True):
            self._check(deadline)
            found = list(self._events.day_events(post_id, day))
            report.events += len(found)
            # The networks' caps, exactly: what several containers let through is cut here.
            found = within_caps(found, self._caps)
            recount = recounts[pk] = Recount()
            for event in found:
                recount.add(event)
                recounts.setdefault(layout.artist_aggregate_pk(event.owner_id), Recount()).add(event)
                site.add(event)
            if not found and (item := live.get((pk, layout.day_sk(day)))):
                self._from_live(pk, item, recounts)
        report.posts += len(posts)
        # Posts first, then artists and the site.
        others = sorted(pk for pk in recounts if pk not in set(post_pks))
        targets = [pk for pk in post_pks + others if recounts[pk].looked]
        number = closed.day_number(day)
        pieces = {pk: recounts[pk].piece(number) for pk in targets}
        self._check(deadline)
        report.writes += self._write_pieces(targets, pieces)
        self._check(deadline)
        report.writes += self._write_series(day, targets, recounts)
        self._check(deadline)
        totals = self._store.get_items((pk, layout.TOTAL_SK) for pk in targets)
        report.writes += self._write_blocks(number, targets, pieces, totals)
        self._check(deadline)
        report.writes += self._add_to_totals(day, targets, recounts, totals)
        report.writes += self._move_ranks(targets, totals)

    def _from_live(self, pk: str, item: Mapping[str, Any], recounts: dict[str, Recount]) -> None:
        """A marked post with no raw events left (TTL passed before the close): keep its
        live counters, so the Day is not zeroed; its Visitors are unknown (no sketch, and
        one distinct Visitor per View, as Views are unique per Visitor, post and Day)."""
        logger.error("close: %s %s has no raw events; keeping its live counters", pk, item["sk"])
        tally = Tally(
            counts=Counter(counters.counter_names(item)),
            first_at=item.get("first_at"),
            last_at=item.get("last_at"),
            owner=item.get("owner"),
        )
        targets = [recounts[pk], recounts[layout.SITE_AGGREGATE_PK]]
        if tally.owner:
            targets.append(recounts.setdefault(layout.artist_aggregate_pk(tally.owner), Recount()))
        for target in targets:
            target.tally.merge(tally)
            target.unnamed += int(tally.counts["v"])
            target.unnamed_signed_in += int(tally.counts["av"])

    # ---- the writes, in their order ---------------------------------------------------------

    def _put_changed(self, wanted: Sequence[dict[str, Any]], existing: Mapping[Key, Any]) -> int:
        changed = [i for i in wanted if existing.get((i["pk"], i["sk"])) != i]
        self._store.put_items(changed)
        return len(changed)

    def _write_pieces(self, targets: Sequence[str], pieces: Mapping[str, closed.Piece]) -> int:
        wanted = [pieces[pk].item(pk) for pk in targets]
        existing = self._store.get_items((str(i["pk"]), str(i["sk"])) for i in wanted)
        return self._put_changed(wanted, existing)

    def _write_series(
        self, day: str, targets: Sequence[str], recounts: Mapping[str, Recount]
    ) -> int:
        """Each target's chunk takes the Day's row: read, replace the row, write back only
        if ``rev`` is unchanged (two Days of one chunk may be written by different runs)."""
        start = closed.chunk_start(day)
        sk = layout.series_sk(start)
        writes = 0
        pending = list(targets)
        for _ in range(_RACE_RETRIES):
            current = self._store.get_items((pk, sk) for pk in pending)
            raced = []
            for pk in pending:
                old = current.get((pk, sk))
                rows = closed.series_rows(old)
                row = recounts[pk].row()
                if rows.get(day) == row:
                    continue
                rows[day] = row
                rev = int(old["rev"]) if old and old.get("rev") is not None else None
                writes += 1
                if not self._store.put_if(
                    closed.series_item(pk, start, rows, (rev or 0) + 1), "rev", rev
                ):
                    raced.append(pk)
            if not raced:
                return writes
            pending = raced
        raise CloseRaced(f"series chunk {sk} of {pending} kept changing")

    def _write_blocks(
        self,
        number: int,
        targets: Sequence[str],
        pieces: Mapping[str, closed.Piece],
        totals: Mapping[Key, Mapping[str, Any]],
    ) -> int:
        """The blocks each target's Day completes (``closed.to_build``), lowest level first,
        each merged from its children: built earlier in this loop, the Day's own piece, or
        read (with the blocks already stored, to skip equal ones) in one batch read."""
        plans: dict[str, tuple[closed.Activity, list[tuple[int, int]]]] = {}
        for pk in targets:
            active = closed.Activity.from_item(totals.get((pk, layout.TOTAL_SK))).with_day(number)
            blocks = closed.to_build(number, active)
            if blocks:
                plans[pk] = (active, blocks)
        wanted: set[Key] = set()
        for pk, (active, blocks) in plans.items():
            built = {(0, number), *blocks}
            for level, start in blocks:
                wanted.add(closed.piece_key(pk, level, start))
                wanted.update(
                    closed.piece_key(pk, *child)
                    for child in closed.children(level, start, active)
                    if child not in built
                )
        found = self._store.get_items(wanted) if wanted else {}
        out: list[dict[str, Any]] = []
        for pk, (active, blocks) in plans.items():
            made = {(0, number): pieces[pk]}
            for level, start in blocks:
                parts = []
                for child in closed.children(level, start, active):
                    piece = made.get(child)
                    if piece is None and (item := found.get(closed.piece_key(pk, *child))):
                        piece = closed.Piece.from_item(item)
                    if piece is None:  # only if someone deleted it: build what is there
                        child_sk = closed.piece_key(pk, *child)[1]
                        logger.error("close: %s lacks %s for a block; left out", pk, child_sk)
                        continue
                    parts.append(piece)
                made[(level, start)] = closed.merge(level, start, parts)
                out.append(made[(level, start)].item(pk))
        return self._put_changed(out, found)

    def _add_to_totals(
        self,
        day: str,
        targets: Sequence[str],
        recounts: Mapping[str, Recount],
        totals: dict[Key, dict[str, Any]],
    ) -> int:
        """Each ``TOTAL`` takes the Day once: skipped when ``thru`` is already there, else
        written only if ``thru`` is still what was read. ``totals`` ends up current."""
        writes = 0
        for pk in targets:
            key = (pk, layout.TOTAL_SK)
            for _ in range(_RACE_RETRIES):
                old = totals.get(key)
                if old is not None and str(old.get("thru", "")) >= day:
                    break
                new = total_with_day(pk, old, recounts[pk].tally, day)
                writes += 1
                if self._store.put_if(new, "thru", (old or {}).get("thru")):
                    totals[key] = new
                    break
                totals.update(self._store.get_items([key]))
            else:
                raise CloseRaced(f"TOTAL of {pk} kept changing")
        return writes

    def _move_ranks(self, targets: Sequence[str], totals: Mapping[Key, Mapping[str, Any]]) -> int:
        """Each post's ``RANK`` (its by_views entry) takes its owner and lifetime figures (the
        listing row the index projects: ``tables.RANK_ROW_ATTRIBUTES``)."""
        wanted: list[dict[str, Any]] = []
        for pk in targets:
            total = totals.get((pk, layout.TOTAL_SK))
            if counters.is_post(pk) and total and total.get("owner"):
                gpk = layout.artist_aggregate_pk(str(total["owner"]))
                rank = {"pk": pk, "sk": layout.RANK_SK, "gpk": gpk, "v": int(total["v"])}
                rank.update({k: total[k] for k in RANK_ROW_ATTRIBUTES if k in total})
                wanted.append(rank)
        existing = self._store.get_items((str(r["pk"]), layout.RANK_SK) for r in wanted)
        return self._put_changed(wanted, existing)


def total_with_day(
    pk: str, old: Mapping[str, Any] | None, tally: Tally, day: str
) -> dict[str, Any]:
    """``TOTAL`` after adding one closed Day: sums, first/last View, the post's owner as of
    the Day (Days close in order, so the newest), ``thru`` and the activity bitmap."""
    old = old or {}
    active = closed.Activity.from_item(old).with_day(closed.day_number(day))
    item: dict[str, Any] = {"pk": pk, "sk": layout.TOTAL_SK}
    for measure in counters.MEASURES:
        n = int(old.get(measure, 0)) + int(tally.counts[measure])
        if n or measure == "v":  # every TOTAL has `v` (0 with only Impressions)
            item[measure] = n
    stamps = [
        s for s in (old.get("first_at"), old.get("last_at"), tally.first_at, tally.last_at) if s
    ]
    if stamps:
        item["first_at"], item["last_at"] = min(stamps), max(stamps)
    owner = tally.owner or old.get("owner")
    if counters.is_post(pk) and owner:
        item["owner"] = owner
    item["thru"] = day
    item.update(active.attributes())
    return item


def closed_day(store: AggregateStore, pk: str, day: str) -> dict[str, Any] | None:
    """A closed Day of one target as flat counters (``v``, ``vc:BR``, ``vh:13``, ``uv``,
    ``auv``, ``first_at``...), read back from its series row and level-0 piece: for tools
    and tests that check a closed Day. None when the target had no look that Day."""
    series, piece = closed.series_key(pk, day), closed.piece_key(pk, 0, closed.day_number(day))
    found = store.get_items([series, piece])
    row = closed.series_rows(found.get(series)).get(day)
    if row is None:
        return None
    out: dict[str, Any] = dict(row.totals)
    for measure, hours in row.hours.items():
        out.update({f"{measure}h:{hour}": n for hour, n in hours.items()})
    if piece in found:
        for measure, dims in closed.Piece.from_item(found[piece]).parts.items():
            for dimension, values in dims.items():
                out.update({f"{measure}{dimension}:{value}": n for value, n in values.items()})
    out["uv"], out["auv"] = row.unique.get("v", 0), row.unique.get("av", 0)
    if row.first_at:
        out["first_at"], out["last_at"] = row.first_at, row.last_at
    return out
