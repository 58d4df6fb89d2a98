"""The live path's side of the ``aggregates`` table: open Days' counters, the Days' activity
markers with posts' ``by_views`` entries, the stream handler's position, the watermark.

* ``add_live``: one ``UpdateItem`` per (Target, Day) a stream batch touched, on its
  ``D#{day}`` item: ADD of the counters (``counts.event_counts`` names), SET of the last View
  and a post's owner, SET-if-absent of the first View and of ``expires_at`` (the item expires
  with the Day's raw events: readers use it only until the close). An update refused because
  the item would outgrow DynamoDB's 400 KB is sent once more without its open-ended
  breakdowns (channels, referrers); the close recounts the Day exactly from raw events.
* ``mark_active``: the ``DAY#{day}`` markers, the close's list of posts to recount, and each
  post's ``RANK`` item (its by_views entry) created with ``v`` 0, or moved to a new owner,
  so a post is listed from its first look, not its first close. ``mark_shards``: a hot
  post's write shards used that Day, the keys the close reads besides the Day's own.
* ``note_stream_position`` / ``stream_position``: the ``PUMP``/``STATE`` item.
* ``watermark`` / ``advance_watermark``: the last closed Day (``CLOSE``/``WATERMARK``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from chalicelib.counts import DayTallies, Target, without_open_ended
from chalicelib.storage.aggregates import layout
from chalicelib.storage.keys import event_expires_at
from chalicelib.storage.ports import AggregateStore, CounterUpdate


@dataclass(frozen=True)
class LiveResult:
    """What ``add_live`` did: the items updated, how many of those updates were retried
    without their open-ended breakdowns, and the (Target, Day) items refused even then."""

    updates: int
    trimmed: int = 0
    refused: tuple[tuple[Target, str], ...] = ()


@dataclass(frozen=True)
class StreamPosition:
    """The stream handler's position, as it last noted it (all None before its first batch)."""

    processed_at: str | None = None  # when the handler noted it
    last_record_at: str | None = None  # the newest record's ApproximateCreationDateTime
    last_event_at: str | None = None  # the newest look the live counters include
    lag_ms: int | None = None  # from the newest look to processed_at
    batches: int = 0  # batches noted (with ``state_every_s``, not every batch)

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> StreamPosition:
        item = item or {}
        names = ("processed_at", "last_record_at", "last_event_at")
        texts = {name: str(item[name]) for name in names if item.get(name)}
        lag = item.get("lag_ms")
        return cls(
            **texts,
            lag_ms=int(lag) if lag is not None else None,
            batches=int(item.get("batches", 0)),
        )


def day_updates(tallies: DayTallies, ttl_days: int) -> list[CounterUpdate]:
    """The ``D#{day}`` update of each (Target, Day), in key order."""
    updates = []
    for (target, day), tally in sorted(tallies.items()):
        sets: dict[str, Any] = {}
        if target.kind == "post" and tally.owner:
            sets["owner"] = tally.owner
        if tally.last_at:
            sets["last_at"] = tally.last_at
        keep: dict[str, Any] = {"expires_at": event_expires_at(day, ttl_days)}
        if tally.first_at:
            keep["first_at"] = tally.first_at
        updates.append(
            CounterUpdate(
                pk=layout.pk_of(target),
                sk=layout.day_sk(day),
                add=dict(tally.counts),
                set=sets,
                set_if_absent=keep,
            )
        )
    return updates


class LiveCounters:
    items: AggregateStore

    def add_live(self, tallies: DayTallies, ttl_days: int) -> LiveResult:
        """Add a batch's Tallies to their open Days' live items (module docstring)."""
        updates = day_updates(tallies, ttl_days)
        retry = [
            replace(update, add=without_open_ended(update.add))
            for update, _reason in self.items.add_counters(updates)
        ]
        if not retry:
            return LiveResult(len(updates))
        refused = tuple(
            (layout.target_of(update.pk), layout.day_of_sk(update.sk))
            for update, _reason in self.items.add_counters(retry)
        )
        return LiveResult(len(updates), len(retry), refused)

    def mark_active(
        self, active: Iterable[tuple[str, int]], owners: Mapping[int, str], ttl_days: int
    ) -> None:
        """Mark posts active on Days (``(day, post_id)``, in one batch write), and give each
        post of ``owners`` a ``RANK`` under that owner: one read of the posts' entries, a
        write only for a missing entry or a new owner."""
        self.items.put_items(
            {
                "pk": layout.marker_pk(day),
                "sk": layout.marker_key(day, post_id)[1],
                "expires_at": event_expires_at(day, ttl_days),
            }
            for day, post_id in active
        )
        wanted = {
            (layout.pk_of(Target.post(post_id)), layout.RANK_SK): layout.pk_of(Target.artist(owner))
            for post_id, owner in owners.items()
        }
        found = self.items.get_items(wanted)
        moved = [
            CounterUpdate(pk, sk, add={}, set={"gpk": gpk}, set_if_absent={"v": 0})
            for (pk, sk), gpk in sorted(wanted.items())
            if (found.get((pk, sk)) or {}).get("gpk") != gpk
        ]
        if moved:
            self.items.add_counters(moved)

    def mark_shards(self, used: Iterable[tuple[str, int, int]], ttl_days: int) -> None:
        """Note the write shards posts' looks used on Days (``(day, post_id, shard)``, in one
        batch write): each an idempotent marker, whichever container writes it first."""
        self.items.put_items(
            {
                "pk": layout.marker_pk(day),
                "sk": layout.shard_marker_key(day, post_id, shard)[1],
                "expires_at": event_expires_at(day, ttl_days),
            }
            for day, post_id, shard in used
        )

    def note_stream_position(self, position: StreamPosition) -> None:
        """One small write: the position's known fields, and one more batch."""
        noted = {
            name: value
            for name, value in asdict(position).items()
            if name != "batches" and value is not None
        }
        pk, sk = layout.pump_state_key()
        self.items.add_counters([CounterUpdate(pk, sk, add={"batches": 1}, set=noted)])

    def stream_position(self) -> StreamPosition:
        key = layout.pump_state_key()
        return StreamPosition.from_item(self.items.get_items([key]).get(key))

    def watermark(self) -> str | None:
        """The last closed Day, or None before the first close."""
        return self.items.get_watermark()

    def advance_watermark(self, day: str) -> bool:
        """Move the watermark forward to ``day``, never back; False if it was already there."""
        return self.items.advance_watermark(day)
