"""The daily close: every finished Day past the watermark, recounted exactly from raw events.

For one Day, in an order that any crash can resume from:

1. each post active that Day (its ``DAY#{day}`` markers) is recounted from its raw events;
   its ``D#{day}`` item is overwritten with exact counters (``closed``, ``uv``, ``auv``)
   and an ``H#{day}`` item gets the HLL sketches of its Visitors;
2. the artist and site ``D#{day}`` items (and sketches) are rebuilt from the same events;
3. each of those items' ``CLOSED`` running sum takes the Day once (guarded by ``thru``);
4. each ``TOTAL`` is rebuilt as ``CLOSED`` + its open Days, with a revision check so a
   live update racing it is never lost; this also heals any drift a failed stream batch
   left between live Days and TOTAL;
5. the watermark moves to the Day (never back).

Every write is an idempotent overwrite that is skipped when nothing changed, so a second
run writes nothing. The run stops inside its time budget and resumes at the first Day
not yet closed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from chalicelib.clock import Clock
from chalicelib.model import ViewEvent
from chalicelib.rollup import counters
from chalicelib.rollup.counters import Tally
from chalicelib.rollup.sketches import visitor_sketch
from chalicelib.rollup.status import watermark_age_emf
from chalicelib.storage import codec, keys
from chalicelib.storage.ports import AggregateStore, EventStore

logger = logging.getLogger("vts.rollup")

Key = tuple[str, str]
_RACE_RETRIES = 5  # rounds of read-rebuild-write when a live update races a TOTAL rebuild
_VOLATILE = ("closed_at",)


@dataclass
class Recount:
    """One item's exact Day: counters, and the Visitors behind its Views."""

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

    def day_item(self, pk: str, day: str, closed_at: str) -> dict[str, Any]:
        item: dict[str, Any] = {"pk": pk, "sk": keys.day_sk(day)}
        item.update(counters.cap_open_ended(self.tally.counts))
        if self.tally.first_at:
            item["first_at"] = self.tally.first_at
            item["last_at"] = self.tally.last_at
        if counters.is_post(pk) and self.tally.owner:
            item["owner"] = self.tally.owner
        item.update(
            closed=True,
            closed_at=closed_at,
            uv=len(self.visitors) + self.unnamed,
            auv=len(self.signed_in) + self.unnamed_signed_in,
        )
        return item

    def sketch_item(self, pk: str, day: str) -> dict[str, Any] | None:
        if not self.visitors:
            return None
        pk_, sk = keys.sketch_key(pk, day)
        item: dict[str, Any] = {"pk": pk_, "sk": sk, "hll": visitor_sketch(self.visitors)}
        if self.signed_in:
            item["ahll"] = visitor_sketch(self.signed_in)
        return item


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
    running = date.fromisoformat(keys.day_of(now - timedelta(seconds=grace_s)))
    return (running - timedelta(days=1)).isoformat()


def same_item(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Equal but for bookkeeping that a rewrite would only refresh."""
    if old is None:
        return False
    strip = set(_VOLATILE)
    return {k: v for k, v in old.items() if k not in strip} == {
        k: v for k, v in new.items() if k not in strip
    }


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
    ) -> None:
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
        site = self._store.query_range(keys.SITE_AGGREGATE_PK, keys.day_sk(""), keys.day_sk("~"))
        if not site:
            return last
        earliest = keys.day_of_aggregate_sk(str(site[0]["sk"]))
        return max(earliest, keys.day_of(now - timedelta(days=self._ttl_days)))

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
        closed_at = codec.iso(now)
        markers = self._store.query_range(keys.marker_pk(day), "P#", "P#~")
        posts = sorted({keys.post_of_marker_sk(str(m["sk"])) for m in markers})
        recounts: dict[str, Recount] = {}
        site = recounts[keys.SITE_AGGREGATE_PK] = Recount()
        post_pks = [keys.post_aggregate_pk(p) for p in posts]
        live = self._store.get_items((pk, keys.day_sk(day)) for pk in post_pks)
        for post_id, pk in zip(posts, post_pks, strict=True):
            self._check(deadline)
            found = list(self._events.day_events(post_id, day))
            report.events += len(found)
            recount = recounts[pk] = Recount()
            for event in found:
                recount.add(event)
                recounts.setdefault(keys.artist_aggregate_pk(event.owner_id), Recount()).add(event)
                site.add(event)
            if not found and (item := live.get((pk, keys.day_sk(day)))):
                self._from_live(pk, item, recounts)
        report.posts += len(posts)
        self._check(deadline)
        # Posts first, then artists and the site, so a reader never sees a closed artist
        # Day whose posts are still live.
        ordered = post_pks + sorted(pk for pk in recounts if pk not in set(post_pks))
        report.writes += self._write_days(day, ordered, recounts, closed_at)
        self._check(deadline)
        report.writes += self._add_to_closed(day, ordered, recounts)
        self._check(deadline)
        report.writes += self._rebuild_totals(day, now, ordered)

    def _from_live(self, pk: str, item: Mapping[str, Any], recounts: dict[str, Recount]) -> None:
        """A marked post with no raw events left (TTL passed before the close): keep its
        live counters, so the Day is not zeroed; its Visitors are unknown."""
        logger.error("close: %s %s has no raw events; keeping its live counters", pk, item["sk"])
        tally = Tally(
            counts=Counter(counters.counter_names(item)),
            first_at=item.get("first_at"),
            last_at=item.get("last_at"),
            owner=item.get("owner"),
        )
        targets = [recounts[pk], recounts[keys.SITE_AGGREGATE_PK]]
        if tally.owner:
            targets.append(recounts.setdefault(keys.artist_aggregate_pk(tally.owner), Recount()))
        for target in targets:
            target.tally.merge(tally)
            target.unnamed += int(tally.counts["v"])
            target.unnamed_signed_in += int(tally.counts["av"])

    def _write_days(
        self, day: str, ordered: list[str], recounts: Mapping[str, Recount], closed_at: str
    ) -> int:
        wanted: list[dict[str, Any]] = []
        for pk in ordered:
            recount = recounts[pk]
            wanted.append(recount.day_item(pk, day, closed_at))
            sketch = recount.sketch_item(pk, day)
            if sketch is not None:
                wanted.append(sketch)
        existing = self._store.get_items((str(i["pk"]), str(i["sk"])) for i in wanted)
        changed = [i for i in wanted if not same_item(existing.get((i["pk"], i["sk"])), i)]
        self._store.put_items(changed)
        return len(changed)

    def _add_to_closed(self, day: str, ordered: list[str], recounts: Mapping[str, Recount]) -> int:
        """Each item's running sum of closed Days takes this Day once."""
        writes = 0
        current = self._store.get_items((pk, keys.CLOSED_SK) for pk in ordered)
        for pk in ordered:
            old = current.get((pk, keys.CLOSED_SK))
            for _ in range(_RACE_RETRIES):
                if old is not None and str(old.get("thru", "")) >= day:
                    break
                new = closed_sum(pk, old, recounts[pk].tally, day)
                writes += 1
                if self._store.put_if(new, "thru", old.get("thru") if old else None):
                    break
                old = self._store.get_items([(pk, keys.CLOSED_SK)]).get((pk, keys.CLOSED_SK))
        return writes

    def _rebuild_totals(self, day: str, now: datetime, ordered: list[str]) -> int:
        """TOTAL := CLOSED + the Days after the last one it holds (``thru``: ``day``, or a
        later one when an earlier Day is closed again), unless a live update raced us;
        then each post's ``RANK`` (its by_views entry) takes the rebuilt lifetime Views."""
        writes = 0
        rebuilt: dict[str, dict[str, Any]] = {}
        today = keys.day_of(now)
        pending = list(ordered)
        for _ in range(_RACE_RETRIES):
            if not pending:
                break
            wanted = [(pk, keys.TOTAL_SK) for pk in pending] + [
                (pk, keys.CLOSED_SK) for pk in pending
            ]
            # TOTAL is read before the open Days: a live update landing in between is then
            # either in both reads or caught by the revision check.
            totals = self._store.get_items(wanted)
            open_days = {
                pk: days_between(
                    next_day(str((totals.get((pk, keys.CLOSED_SK)) or {}).get("thru", day))), today
                )
                for pk in pending
            }
            days = self._store.get_items(
                (pk, keys.day_sk(d)) for pk in pending for d in open_days[pk]
            )
            raced = []
            for pk in pending:
                total = totals.get((pk, keys.TOTAL_SK))
                parts = [totals.get((pk, keys.CLOSED_SK))]
                parts += [days.get((pk, keys.day_sk(d))) for d in open_days[pk]]
                new = rebuilt_total(pk, total, [p for p in parts if p is not None])
                rebuilt[pk] = new
                if same_item(total, new):
                    continue
                writes += 1
                if not self._store.put_if(
                    new, counters.REVISION, (total or {}).get(counters.REVISION)
                ):
                    raced.append(pk)
            pending = raced
        if pending:
            logger.warning(
                "close: TOTAL of %s kept racing live updates; next close rebuilds", pending
            )
        return writes + self._move_ranks(rebuilt)

    def _move_ranks(self, totals: Mapping[str, Mapping[str, Any]]) -> int:
        wanted: list[dict[str, Any]] = []
        for pk, total in totals.items():
            if counters.is_post(pk) and total.get("owner"):
                gpk = keys.artist_aggregate_pk(str(total["owner"]))
                wanted.append({"pk": pk, "sk": keys.RANK_SK, "gpk": gpk, "v": int(total["v"])})
        existing = self._store.get_items((str(r["pk"]), keys.RANK_SK) for r in wanted)
        changed = [r for r in wanted if not same_item(existing.get((r["pk"], keys.RANK_SK)), r)]
        self._store.put_items(changed)
        return len(changed)


def closed_sum(
    pk: str, old: Mapping[str, Any] | None, day_tally: Tally, day: str
) -> dict[str, Any]:
    """The ``CLOSED`` item after adding one exact Day."""
    total = Tally(counts=Counter(counters.counter_names(old or {})))
    if old:
        # Days close in order: the Day's own owner (when it has looks) is the newest.
        total.first_at, total.last_at, total.owner = (
            old.get("first_at"),
            old.get("last_at"),
            old.get("owner"),
        )
    total.merge(day_tally)
    item: dict[str, Any] = {"pk": pk, "sk": keys.CLOSED_SK, "thru": day}
    item.update(counters.cap_open_ended(total.counts))
    if total.first_at:
        item["first_at"], item["last_at"] = total.first_at, total.last_at
    if counters.is_post(pk) and total.owner:
        item["owner"] = total.owner
    return item


def rebuilt_total(
    pk: str, total: Mapping[str, Any] | None, parts: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """``TOTAL`` as the sum of ``parts`` (CLOSED and the open Days), keeping its revision
    and the post's current owner."""
    sums: Counter[str] = Counter()
    first: str | None = None
    last: str | None = None
    owner: str | None = None
    for part in parts:
        sums.update(counters.counter_names(part))
        if part.get("first_at"):
            first = min(first or "~", str(part["first_at"]))
        if part.get("last_at"):
            last = max(last or "", str(part["last_at"]))
        owner = str(part["owner"]) if part.get("owner") else owner
    item: dict[str, Any] = {"pk": pk, "sk": keys.TOTAL_SK}
    item.update(counters.measures_only(sums))
    item["v"] = int(sums.get("v", 0))
    if first:
        item["first_at"], item["last_at"] = first, last
    if total and total.get(counters.REVISION) is not None:
        item[counters.REVISION] = total[counters.REVISION]
    if counters.is_post(pk):
        owner = str(total["owner"]) if total and total.get("owner") else owner
        if owner:
            item["owner"] = owner
    return item
