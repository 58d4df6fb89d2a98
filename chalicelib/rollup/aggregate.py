"""The stream handler service: raw-event INSERTs in, live counters out.

A batch of DynamoDB-stream records (Lambda's event shape) is decoded, looks of closed Days
are skipped (the close counted them exactly), posts new to this container are marked active
on their Days (the close's list of posts to recount), and the batch folds into one Tally per
(Target, Day), bounded by ``LiveCap``, which storage adds to the open Day's live counters.
Lifetime figures are the close's alone. Delivery is at least once: a retried batch may
count twice on an open Day, never less, and the close makes every finished Day exact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.clock import Clock
from chalicelib.counts import fold
from chalicelib.days import iso
from chalicelib.drops import DropCounter, DropReason
from chalicelib.model import ViewEvent
from chalicelib.rollup.hot import HotPosts, newest_per_post
from chalicelib.rollup.livecap import LiveCap
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.aggregates.live import StreamPosition
from chalicelib.storage.stream import event_from_image

logger = logging.getLogger("vts.rollup")

# (day, post) pairs already marked by this container: a hot post is marked once, not per batch.
_MARKER_CACHE_MAX = 200_000

@dataclass(frozen=True)
class BatchReport:
    """What one invocation did (logged; the pump and tests read it)."""

    records: int = 0
    events: int = 0
    skipped_closed: int = 0
    ignored: int = 0
    bad: int = 0
    markers: int = 0
    updates: int = 0
    failed: bool = False


class Aggregator:
    def __init__(
        self,
        aggregates: Aggregates,
        drops: DropCounter,
        clock: Clock,
        *,
        ttl_days: int,
        state_every_s: float = 0.0,
        hot: HotPosts | None = None,
    ) -> None:
        self._aggregates = aggregates
        self._drops = drops
        self._clock = clock
        self._ttl_days = ttl_days
        self._state_every_s = state_every_s
        self._marked: set[tuple[str, int]] = set()
        self._cap = LiveCap()
        self._state_written_at: datetime | None = None
        self.last_report = BatchReport()
        # Hot posts' write shards (rollup/hot.py): the shards a Day used, and the hot marks.
        self._hot = hot if hot is not None else HotPosts(aggregates, clock, ttl_days=ttl_days)

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Lambda's partial-batch response: empty, or the first record to retry from."""
        records: Sequence[Mapping[str, Any]] = event.get("Records") or []
        if not records:
            return {"batchItemFailures": []}
        try:
            self.last_report = self._process(records)
        except Exception:
            # Nothing is checkpointed: the whole batch comes again (and counts again on open
            # Days, which the close corrects). Logged with its trace for the on-call.
            logger.exception("aggregate: batch of %d records failed; retrying it", len(records))
            self.last_report = BatchReport(records=len(records), failed=True)
            first = str(records[0].get("dynamodb", {}).get("SequenceNumber", ""))
            return {"batchItemFailures": [{"itemIdentifier": first}]}
        finally:
            self._drops.flush()
        return {"batchItemFailures": []}

    def _process(self, records: Sequence[Mapping[str, Any]]) -> BatchReport:
        events: list[ViewEvent] = []
        ignored = bad = 0
        for record in records:
            if record.get("eventName") != "INSERT":
                ignored += 1  # REMOVE (TTL expiry) and MODIFY carry no new look
                continue
            decoded = self.decode_record(record)
            if decoded is None:
                bad += 1
                continue
            events.append(decoded)
        if bad:
            self._drops.count(DropReason.BAD_STREAM_RECORD, bad)
        watermark = self._aggregates.watermark() if events else None
        live = [e for e in events if watermark is None or e.day > watermark]
        skipped = len(events) - len(live)
        if skipped:
            self._drops.count(DropReason.AFTER_CLOSE, skipped)
        markers = self._mark_active(live)
        self._hot.observe(live)
        result = self._aggregates.add_live(self._cap.apply(fold(live)), self._ttl_days)
        if result.trimmed:
            # Items at DynamoDB's size limit took their Tally without the open-ended breakdowns.
            self._drops.count(DropReason.COUNTER_BREAKDOWN_TRIMMED, result.trimmed)
        for target, day in result.refused:
            logger.error("aggregate: the live item of %s on %s refused (too large)", target, day)
            self._drops.count(DropReason.COUNTER_ITEM_FULL)
        self._note_position(records, live)
        return BatchReport(
            records=len(records),
            events=len(events),
            skipped_closed=skipped,
            ignored=ignored,
            bad=bad,
            markers=markers,
            updates=result.updates,
        )

    def decode_record(self, record: Mapping[str, Any]) -> ViewEvent | None:
        """A stream record's NEW_IMAGE as a ViewEvent; None when it is not one of ours."""
        image = record.get("dynamodb", {}).get("NewImage")
        if not isinstance(image, dict):
            return None
        try:
            return event_from_image(image)
        except (KeyError, ValueError, TypeError, AttributeError):
            logger.warning("aggregate: undecodable stream record %s", record.get("eventID"))
            return None

    def _mark_active(self, events: Sequence[ViewEvent]) -> int:
        """Mark the (Day, post) pairs this container has not marked yet; each such post's
        owner is the one of its newest look in the batch. The number of new pairs."""
        wanted = sorted({(e.day, e.post_id) for e in events} - self._marked)
        if not wanted:
            return 0
        posts = {post_id for _, post_id in wanted}
        owners = {p: e.owner_id for p, e in newest_per_post(events).items() if p in posts}
        self._aggregates.mark_active(wanted, owners, self._ttl_days)
        if len(self._marked) + len(wanted) > _MARKER_CACHE_MAX:
            self._marked.clear()
        self._marked.update(wanted)
        return len(wanted)

    def _note_position(
        self, records: Sequence[Mapping[str, Any]], events: Sequence[ViewEvent]
    ) -> None:
        """Note the newest record handled: one small write per batch (a batch costs dozens);
        ``state_every_s`` can thin it out."""
        now = self._clock.now()
        last = self._state_written_at
        if last is not None and 0 <= (now - last).total_seconds() < self._state_every_s:
            return
        created = [
            float(r["dynamodb"]["ApproximateCreationDateTime"])
            for r in records
            if isinstance(r.get("dynamodb", {}).get("ApproximateCreationDateTime"), (int, float))
        ]
        newest = max((e.occurred_at for e in events), default=None)
        self._aggregates.note_stream_position(
            StreamPosition(
                processed_at=iso(now),
                last_record_at=iso(datetime.fromtimestamp(max(created), UTC)) if created else None,
                last_event_at=iso(newest) if newest else None,
                lag_ms=max(0, int((now - newest).total_seconds() * 1000)) if newest else None,
            )
        )
        self._state_written_at = now
