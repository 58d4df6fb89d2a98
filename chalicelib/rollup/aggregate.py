"""The stream handler service: raw-event INSERTs in, live counter updates out.

A batch of DynamoDB-stream records (Lambda's event shape) is decoded, events of closed
Days are skipped (the close counted them exactly), the Day's activity markers are written
(the close's list of posts to recount), and the batch folds into one ``UpdateItem`` per
touched ``D#{day}`` item. Nothing else is updated per batch: lifetime ``TOTAL`` items are
the close's alone. Delivery is at least once: a retried batch may count twice on an open
Day, never less, and the close makes every finished Day exact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from chalicelib.clock import Clock
from chalicelib.counts import OPEN_ENDED
from chalicelib.days import iso
from chalicelib.drops import DropCounter, DropReason
from chalicelib.model import ViewEvent
from chalicelib.rollup import counters
from chalicelib.storage import codec, keys
from chalicelib.storage.aggregates import layout
from chalicelib.storage.ports import AggregateStore, CounterUpdate

logger = logging.getLogger("vts.rollup")

# Markers already written by this container: a hot post's marker is written once, not per batch.
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
        store: AggregateStore,
        drops: DropCounter,
        clock: Clock,
        *,
        ttl_days: int,
        state_every_s: float = 0.0,
    ) -> None:
        self._store = store
        self._drops = drops
        self._clock = clock
        self._ttl_days = ttl_days
        self._state_every_s = state_every_s
        self._markers: set[tuple[str, int]] = set()
        self._cap = counters.LiveCap()
        self._state_written_at: datetime | None = None
        self.last_report = BatchReport()

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
            decoded = decode_record(record)
            if decoded is None:
                bad += 1
                continue
            events.append(decoded)
        if bad:
            self._drops.count(DropReason.BAD_STREAM_RECORD, bad)
        watermark = self._store.get_watermark() if events else None
        live = [e for e in events if watermark is None or e.day > watermark]
        skipped = len(events) - len(live)
        if skipped:
            self._drops.count(DropReason.AFTER_CLOSE, skipped)
        markers = self._write_markers(live)
        tallies = self._cap.apply(counters.fold(live))
        updates = counters.day_updates(tallies, self._ttl_days)
        self._apply(updates)
        self._note_position(records, live)
        return BatchReport(
            records=len(records),
            events=len(events),
            skipped_closed=skipped,
            ignored=ignored,
            bad=bad,
            markers=markers,
            updates=len(updates),
        )

    def _write_markers(self, events: Sequence[ViewEvent]) -> int:
        wanted = sorted({(e.day, e.post_id) for e in events} - self._markers)
        if not wanted:
            return 0
        self._store.put_items(
            {
                "pk": layout.marker_pk(day),
                "sk": layout.marker_key(day, post_id)[1],
                "expires_at": keys.event_expires_at(day, self._ttl_days),
            }
            for day, post_id in wanted
        )
        self._ensure_ranks(events, {post_id for _, post_id in wanted})
        if len(self._markers) + len(wanted) > _MARKER_CACHE_MAX:
            self._markers.clear()
        self._markers.update(wanted)
        return len(wanted)

    def _ensure_ranks(self, events: Sequence[ViewEvent], posts: set[int]) -> None:
        """A post new to this container gets its ``by_views`` entry (``RANK``) if it has
        none, or follows its new owner: it is listed from its first look, not its first close.
        One read per new post and Day; a write only when something changes."""
        owners: dict[int, tuple[datetime, str]] = {}
        for event in events:
            if (
                event.post_id in posts
                and event.occurred_at >= owners.get(event.post_id, (event.occurred_at, ""))[0]
            ):
                owners[event.post_id] = (event.occurred_at, event.owner_id)
        wanted = {
            (layout.post_aggregate_pk(p), layout.RANK_SK): owner for p, (_, owner) in owners.items()
        }
        found = self._store.get_items(wanted)
        updates = [
            CounterUpdate(
                pk, sk, add={}, set={"gpk": layout.artist_aggregate_pk(owner)}, set_if_absent={"v": 0}
            )
            for (pk, sk), owner in sorted(wanted.items())
            if (found.get((pk, sk)) or {}).get("gpk") != layout.artist_aggregate_pk(owner)
        ]
        if updates:
            self._store.add_counters(updates)

    def _apply(self, updates: list[CounterUpdate]) -> None:
        """Apply updates; an item at DynamoDB's size limit takes its update without the
        open-ended breakdowns (the close recounts the Day exactly from raw events)."""
        retry = [
            replace(update, add=without_open_ended(update.add))
            for update, _reason in self._store.add_counters(updates)
        ]
        if not retry:
            return
        self._drops.count(DropReason.COUNTER_BREAKDOWN_TRIMMED, len(retry))
        for update, reason in self._store.add_counters(retry):
            logger.error("aggregate: %s %s refused (%s)", update.pk, update.sk, reason)
            self._drops.count(DropReason.COUNTER_ITEM_FULL)

    def _note_position(
        self, records: Sequence[Mapping[str, Any]], events: Sequence[ViewEvent]
    ) -> None:
        """Note the newest record handled (``PUMP``/``STATE``): one small write per batch
        (a batch costs dozens); ``state_every_s`` can thin it out."""
        now = self._clock.now()
        last = self._state_written_at
        if last is not None and 0 <= (now - last).total_seconds() < self._state_every_s:
            return
        created = [
            float(r["dynamodb"]["ApproximateCreationDateTime"])
            for r in records
            if isinstance(r.get("dynamodb", {}).get("ApproximateCreationDateTime"), (int, float))
        ]
        state: dict[str, Any] = {"processed_at": iso(now)}
        if created:
            state["last_record_at"] = iso(datetime.fromtimestamp(max(created), UTC))
        if events:
            newest = max(e.occurred_at for e in events)
            state["last_event_at"] = iso(newest)
            state["lag_ms"] = max(0, int((now - newest).total_seconds() * 1000))
        pk, sk = layout.pump_state_key()
        self._store.add_counters([CounterUpdate(pk, sk, add={"batches": 1}, set=state)])
        self._state_written_at = now


def decode_record(record: Mapping[str, Any]) -> ViewEvent | None:
    """A stream record's NEW_IMAGE as a ViewEvent; None when it is not one of ours."""
    image = record.get("dynamodb", {}).get("NewImage")
    if not isinstance(image, dict):
        return None
    try:
        return codec.event_from_item(codec.from_typed(image))
    except (KeyError, ValueError, TypeError, AttributeError):
        logger.warning("aggregate: undecodable stream record %s", record.get("eventID"))
        return None


def without_open_ended(add: Mapping[str, int]) -> dict[str, int]:
    return {
        name: n
        for name, n in add.items()
        if (split := counters.split_breakdown(name)) is None or split[1] not in OPEN_ENDED
    }
