"""Counted drop reasons: every dropped message is counted by reason, never raised.

``DropReason`` names every reason, for the web and player recording paths and the stream
handler alike (what ``/v1/health`` and the ``drop_*`` metrics show).

Counts are buffered in the process and flushed to the ``DropStore`` at most every
``flush_s`` seconds (``VTS_DROP_FLUSH_S``, 0 = at once), by the first request of any kind
once that time has passed, and at the end of a batch handler and before ``/v1/health``
reads them. One flush is one ``ADD`` per Day, whatever the reasons and counts, so a flood
of bots does not add a write per request.

The same counts, with ``accepted`` and ``counted``, are CloudWatch EMF metrics when a sink is
given (in Lambda): summed in the process too and written as ONE EMF line per flush, not one
per request (a line is ~220 bytes of CloudWatch Logs, $0.50 per GB: per request it was a
tenth of the bill per million views, bench/bench_price.py). A container reclaimed before its
next flush loses its unflushed counts in both places (at most ``flush_s`` seconds of them);
the stored looks themselves are never affected.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime
from enum import StrEnum

from chalicelib.clock import Clock
from chalicelib.days import day_of
from chalicelib.errors import StorageUnavailable
from chalicelib.metrics import Sink
from chalicelib.storage.ports import DropStore

logger = logging.getLogger(__name__)


class DropReason(StrEnum):
    """Why a message was not stored (or, for the stream, not counted live)."""

    # web recording (chalicelib/ingest/web.py), in pipeline order
    GPC = "gpc"
    BOT = "bot"
    UNKNOWN_POST = "unknown_post"
    POST_NOT_COUNTING = "post_not_counting"  # hidden or deleted: accepted, never stored
    AUTHOR_VIEW = "author_view"
    NET_CAP = "net_cap"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"
    # player reports (chalicelib/players/pipeline.py), in pipeline order
    PLAYER_INVALID = "player_invalid"
    PLAYER_KEY_MISMATCH = "player_key_mismatch"
    PLAYER_CLIENT_MISMATCH = "player_client_mismatch"
    PLAYER_UNREGISTERED = "player_unregistered"
    PLAYER_RETRANSMISSION = "player_retransmission"
    PLAYER_RATE_LIMITED = "player_rate_limited"
    PLAYER_UNKNOWN_POST = "player_unknown_post"
    PLAYER_POST_NOT_COUNTING = "player_post_not_counting"
    PLAYER_AUTHOR_VIEW = "player_author_view"
    PLAYER_DUPLICATE = "player_duplicate"
    # the stream handler (chalicelib/rollup/aggregate.py)
    BAD_STREAM_RECORD = "bad_stream_record"
    AFTER_CLOSE = "after_close"
    COUNTER_BREAKDOWN_TRIMMED = "counter_breakdown_trimmed"
    COUNTER_ITEM_FULL = "counter_item_full"


PLAYER_DROPS = tuple(r for r in DropReason if r.startswith("player_"))


class DropCounter:
    def __init__(
        self, store: DropStore, clock: Clock, flush_s: int, sink: Sink | None = None
    ) -> None:
        self._store = store
        self._sink = sink
        self._clock = clock
        self._flush_s = flush_s
        self._lock = threading.Lock()
        self._pending: dict[str, Counter[str]] = {}
        self._metrics: Counter[str] = Counter()  # for the sink, summed until the next flush
        self._last_report: dict[str, str] | None = None
        self._last_flush = clock.now()

    def seen_player_report(self, report: dict[str, str]) -> None:
        """The latest player report this container handled (``at``, key, client, outcome):
        kept with the next flush, so an operator can see a bridge deliver at no write per
        report."""
        with self._lock:
            self._last_report = report
        self._flush_if_due(self._clock.now())

    def accepted(self, counted: bool) -> None:
        """A look that was stored (metrics only: the counters come from the stream)."""
        if self._sink is not None:
            with self._lock:
                self._metrics["accepted"] += 1
                self._metrics["counted"] += int(counted)
        self._flush_if_due(self._clock.now())

    def count(self, reason: DropReason | str, n: int = 1) -> None:
        """Count ``n`` drops; ``reason`` must be a ``DropReason`` (or its value)."""
        reason = DropReason(reason)
        now = self._clock.now()
        with self._lock:
            self._pending.setdefault(day_of(now), Counter())[reason.value] += n
            if self._sink is not None:
                self._metrics[f"drop_{reason.value}"] += n
        self._flush_if_due(now)

    def _flush_if_due(self, now: datetime) -> None:
        # Read without the lock: a rare double check only makes an empty flush, no write.
        idle = not self._pending and not self._metrics and self._last_report is None
        if idle or (now - self._last_flush).total_seconds() < self._flush_s:
            return
        try:
            self.flush()
        except StorageUnavailable as error:
            # The request itself went through: its answer must not turn into a 503 for
            # counters. Their unwritten part is kept (flush put it back) for the next flush.
            logger.warning("drop counters not flushed: %s", error)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            metrics, self._metrics = self._metrics, Counter()
            last, self._last_report = self._last_report, None
            self._last_flush = self._clock.now()
        if metrics and self._sink is not None:
            # Written first and never retried: stdout does not fail like a table.
            self._sink(dict(metrics), self._last_flush)
        if last is not None:
            try:
                self._store.note_last_report(last)
            except Exception:
                with self._lock:
                    self._last_report = self._last_report or last
                    for day, counts in pending.items():
                        self._pending.setdefault(day, Counter()).update(counts)
                raise
        days = list(pending.items())
        for n, (day, counts) in enumerate(days):
            try:
                self._store.add_drops(day, counts)
            except Exception:
                with self._lock:
                    for later_day, later in days[n:]:
                        self._pending.setdefault(later_day, Counter()).update(later)
                raise
