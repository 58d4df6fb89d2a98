"""The daily close: every finished Day past the watermark, recounted exactly from raw events.

Which Days: those whose end lies ``grace_s`` in the past, from the Day after the watermark
(before the first close, from the oldest Day with live counters whose raw events still
live). For each, every post marked active that Day is recounted from its raw events, within
the networks' caps, and its artist and the site from the same events; a hot post's from its
Day's base key and each write shard the stream handler noted it used, a Visitor's View
stored under two of them counted once; a marked post whose
raw events are gone keeps its live counters (its Visitors then known only by number).
Storage keeps the recounted Day of every Target (``Aggregates.write_closed_day``), then the
watermark moves to it, never back.

The run keeps its time budget: it stops between steps of a Day (the Day's writes are
idempotent) and the next run resumes at the first Day not yet closed. It reports the
watermark's age as a metric (alarmed in infra/functions/close_days.yaml).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.clock import Clock
from chalicelib.counts import SITE, Recount, Tally, Target, targets_of
from chalicelib.days import day_name, day_number, day_of, days_between, next_day
from chalicelib.model import ViewEvent
from chalicelib.netcap import Caps, within_caps
from chalicelib.rollup.status import watermark_age_emf
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.aggregates.closing import CloseRaced as CloseRaced  # raised by run()
from chalicelib.storage.ports import EventStore

logger = logging.getLogger("vts.rollup")


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


def once_per_visitor(events: Iterable[ViewEvent]) -> list[ViewEvent]:
    """The looks of one post and Day with each Visitor's View once: a Visitor stored under
    the Day's base key before the post turned hot and under a write shard after (or by a
    throttle fallback) viewed once. The earliest is kept (its time is the View's)."""
    views: dict[str, ViewEvent] = {}
    kept: list[ViewEvent] = []
    for event in events:
        if event.intent != "view":
            kept.append(event)
            continue
        held = views.get(event.visitor)
        if held is None or event.occurred_at < held.occurred_at:
            views[event.visitor] = event
    return kept + list(views.values())


def last_finished_day(now: datetime, grace_s: int) -> str:
    """The newest Day whose end lies ``grace_s`` or more in the past."""
    return day_name(day_number(day_of(now - timedelta(seconds=grace_s))) - 1)


class DayCloser:
    def __init__(
        self,
        aggregates: Aggregates,
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
        self._aggregates = aggregates
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
        watermark = self._aggregates.watermark()
        first = next_day(watermark) if watermark is not None else self._first_day(now, last)
        return days_between(first, last)

    def _first_day(self, now: datetime, last: str) -> str:
        """Before the first close: the first Day with live counters (every counted look
        makes a site Day), but none older than raw events live; else just ``last``."""
        earliest = self._aggregates.first_live_day()
        if earliest is None:
            return last
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
            self._aggregates.advance_watermark(day)
            report.closed_days.append(day)
            report.pending_days -= 1
            if progress:
                progress(n + 1, len(days))
        report.watermark = self._aggregates.watermark()
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
        active = self._aggregates.active_posts(day)
        recounts: dict[Target, Recount] = {SITE: Recount()}
        live = self._aggregates.live_tallies(list(active), day)
        for post_id, shards in active.items():
            self._check(deadline)
            found = list(self._events.day_events(post_id, day))
            for shard in shards:
                found += self._events.day_events(post_id, day, shard)
            report.events += len(found)
            if shards:
                found = once_per_visitor(found)
            # The networks' caps, exactly: what several containers let through is cut here.
            found = within_caps(found, self._caps)
            recount = recounts[Target.post(post_id)] = Recount()
            for event in found:
                _, artist, site = targets_of(event)
                recount.add(event)
                recounts.setdefault(artist, Recount()).add(event)
                recounts[site].add(event)
            if not found and post_id in live:
                self._from_live(post_id, day, live[post_id], recounts)
        report.posts += len(active)
        report.writes += self._aggregates.write_closed_day(
            day, recounts, lambda: self._check(deadline)
        )

    def _from_live(
        self, post_id: int, day: str, tally: Tally, recounts: dict[Target, Recount]
    ) -> None:
        """A marked post with no raw events left (TTL passed before the close): keep its
        live counters, so the Day is not zeroed; its Visitors are unknown (no sketch, and
        one distinct Visitor per View, as Views are unique per Visitor, post and Day)."""
        logger.error(
            "close: post %s has no raw events on %s; keeping its live counters", post_id, day
        )
        keeping = [recounts[Target.post(post_id)], recounts[SITE]]
        if tally.owner:
            keeping.append(recounts.setdefault(Target.artist(tally.owner), Recount()))
        for recount in keeping:
            recount.add_unnamed(tally)
