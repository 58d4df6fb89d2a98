"""Counting looks into the flat counter attributes of docs/data-model.md.

One event becomes increments such as ``v``, ``vc:BR``, ``vh:13`` (and ``av...`` when the
Visitor is signed in); a batch of events folds into one ``Tally`` per item and Day, so a
viral post costs one update per batch, not one per View. The live path (``aggregate``) and
the exact recount (``close``) share these functions, so both count alike: the live ``D#``
items keep these names, and the close turns them into series rows and pieces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.days import iso
from chalicelib.model import ViewEvent
from chalicelib.storage import keys
from chalicelib.storage.aggregates import layout
from chalicelib.storage.ports import CounterUpdate

MEASURES = ("v", "i", "av", "ai")
DIMENSIONS = ("c", "d", "s", "ch", "po", "r", "h")
UNKNOWN_COUNTRY = "??"
NO_CHANNEL = "-"
# Dimensions whose values are open-ended (any token, any domain): the first dropped from a
# full live item; their tail adds up under OTHER, in live items as in closed pieces.
from chalicelib.counts import OPEN_ENDED, OTHER  # noqa: E402

Entity = str  # an aggregate partition: P#{post}, A#{artist} or SITE


def event_counts(event: ViewEvent) -> dict[str, int]:
    """The counter increments one stored look contributes."""
    measure = "v" if event.intent == "view" else "i"
    measures = [measure, "a" + measure] if event.authenticated else [measure]
    values = {
        "c": event.country or UNKNOWN_COUNTRY,
        "d": event.device,
        "s": event.source,
        "ch": event.channel or NO_CHANNEL,
        "h": f"{event.occurred_at.hour:02d}",
    }
    if event.play_order is not None:
        values["po"] = str(event.play_order)
    if event.referrer_domain:
        values["r"] = event.referrer_domain
    counts: dict[str, int] = {}
    for m in measures:
        counts[m] = 1
        for dimension, value in values.items():
            counts[f"{m}{dimension}:{value}"] = 1
    return counts


@dataclass
class Tally:
    """What some looks add to one item: counters, first/last View, the post's owner."""

    counts: Counter[str] = field(default_factory=Counter)
    first_at: str | None = None
    last_at: str | None = None
    owner: str | None = None
    latest_at: str = ""  # the newest look seen, View or not (decides the owner)

    def add(self, event: ViewEvent) -> None:
        self.counts.update(event_counts(event))
        at = iso(event.occurred_at)
        if at >= self.latest_at:
            self.latest_at, self.owner = at, event.owner_id
        if event.intent == "view":
            self.first_at = at if self.first_at is None else min(self.first_at, at)
            self.last_at = at if self.last_at is None else max(self.last_at, at)

    def merge(self, other: Tally) -> None:
        self.counts.update(other.counts)
        for at in (other.first_at, other.last_at):
            if at is not None:
                self.first_at = at if self.first_at is None else min(self.first_at, at)
                self.last_at = at if self.last_at is None else max(self.last_at, at)
        if other.latest_at >= self.latest_at:
            self.latest_at, self.owner = other.latest_at, other.owner


DayTallies = dict[tuple[Entity, str], Tally]


def entities(event: ViewEvent) -> tuple[Entity, Entity, Entity]:
    """The items one look counts in: its post, its artist (the owner then), the site."""
    return (
        layout.post_aggregate_pk(event.post_id),
        layout.artist_aggregate_pk(event.owner_id),
        layout.SITE_AGGREGATE_PK,
    )


def is_post(entity: Entity) -> bool:
    return entity.startswith("P#")


def fold(events: Iterable[ViewEvent]) -> DayTallies:
    """One Tally per (item, Day) touched by the events."""
    tallies: DayTallies = {}
    for event in events:
        for entity in entities(event):
            tallies.setdefault((entity, event.day), Tally()).add(event)
    return tallies


def day_updates(tallies: DayTallies, ttl_days: int) -> list[CounterUpdate]:
    """Live ``D#{day}`` updates. Each item expires with its Day's raw events: readers use it
    only until the close, which keeps the Day in its own items."""
    updates = []
    for (entity, day), tally in sorted(tallies.items()):
        sets: dict[str, Any] = {}
        if is_post(entity) and tally.owner:
            sets["owner"] = tally.owner
        if tally.last_at:
            sets["last_at"] = tally.last_at
        keep: dict[str, Any] = {"expires_at": keys.event_expires_at(day, ttl_days)}
        if tally.first_at:
            keep["first_at"] = tally.first_at
        updates.append(
            CounterUpdate(
                pk=entity, sk=layout.day_sk(day), add=dict(tally.counts), set=sets, set_if_absent=keep
            )
        )
    return updates


def measures_only(counts: Mapping[str, int]) -> dict[str, int]:
    return {m: int(counts.get(m, 0)) for m in MEASURES if counts.get(m)}


def counter_names(item: Mapping[str, Any]) -> dict[str, int]:
    """The counters of a stored item: the measures and their breakdowns."""
    out: dict[str, int] = {}
    for name, value in item.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        if name in MEASURES or _is_breakdown(name):
            out[name] = value
    return out


def _is_breakdown(name: str) -> bool:
    return split_breakdown(name) is not None


def split_breakdown(name: str) -> tuple[str, str, str] | None:
    """``"avc:BR"`` -> ``("av", "c", "BR")``; None for a name that is not a breakdown."""
    prefix, sep, value = name.partition(":")
    if not sep or not value:
        return None
    for measure in ("av", "ai", "v", "i"):
        if prefix.startswith(measure) and prefix[len(measure) :] in DIMENSIONS:
            return measure, prefix[len(measure) :], value
    return None


class LiveCap:
    """Keeps a live Day item's open-ended breakdowns (channels, referrers) from growing
    without bound: per item, Day and measure, the first ``cap`` values this container sends
    keep their names; later new ones add up under ``~other``. Sums stay exact and ``v``/``i``
    untouched; only the names in the tail of a busy open Day are lost, until the close
    recounts the Day from its raw events.

    The memory is per container, so an item can take ``cap`` names per container that
    wrote to it: a bound, not an exact cap. Busy posts' live items are read by every stats
    request that includes today, so their size is read cost (docs/adr/0008).
    """

    def __init__(self, caps: Mapping[str, int] | None = None, max_entries: int = 50_000) -> None:
        self._caps = dict(caps or LIVE_CAPS)
        self._seen: dict[tuple[str, str, str], set[str]] = {}
        self._max_entries = max_entries

    def apply(self, tallies: DayTallies) -> DayTallies:
        if len(self._seen) > self._max_entries:
            self._seen.clear()
        for (entity, day), tally in tallies.items():
            for name in sorted(tally.counts):
                split = split_breakdown(name)
                if split is None or split[1] not in OPEN_ENDED or split[2] == OTHER:
                    continue
                measure, dimension, value = split
                seen = self._seen.setdefault((entity, day, measure + dimension), set())
                if value in seen:
                    continue
                if len(seen) < self._caps.get(measure, 0):
                    seen.add(value)
                    continue
                tally.counts[f"{measure}{dimension}:{OTHER}"] += tally.counts.pop(name)
        return tallies


# Named open-ended values a live Day item keeps per measure and container (LiveCap).
LIVE_CAPS = {"v": 100, "i": 25, "av": 25, "ai": 25}
