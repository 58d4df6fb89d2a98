"""Counting looks into the flat counter attributes of docs/data-model.md.

One event becomes increments such as ``v``, ``vc:BR``, ``vh:13`` (and ``av...`` when the
Visitor is signed in); a batch of events folds into one ``Tally`` per item and Day, so a
viral post costs one update per batch, not one per View. The live path (``aggregate``) and
the exact recount (``close``) share these functions, so both write the same names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.model import ViewEvent
from chalicelib.storage import codec, keys
from chalicelib.storage.ports import CounterUpdate

MEASURES = ("v", "i", "av", "ai")
DIMENSIONS = ("c", "d", "s", "ch", "po", "r", "h")
UNKNOWN_COUNTRY = "??"
NO_CHANNEL = "-"
# Dimensions whose values are open-ended (any token, any domain): capped in closed items.
OPEN_ENDED = ("ch", "r")
OTHER = "~other"
# Keeps a closed item (and the running totals built from them) far below 400 KB.
OPEN_ENDED_CAP = 100
# Bumped by every live TOTAL update, so the close can rebuild TOTAL without losing one.
REVISION = "rev"

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
        at = codec.iso(event.occurred_at)
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
        keys.post_aggregate_pk(event.post_id),
        keys.artist_aggregate_pk(event.owner_id),
        keys.SITE_AGGREGATE_PK,
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


def day_updates(tallies: DayTallies) -> list[CounterUpdate]:
    """Live ``D#{day}`` updates; a closed Day refuses them (the close owns it)."""
    updates = []
    for (entity, day), tally in sorted(tallies.items()):
        sets: dict[str, Any] = {}
        if is_post(entity) and tally.owner:
            sets["owner"] = tally.owner
        if tally.last_at:
            sets["last_at"] = tally.last_at
        updates.append(
            CounterUpdate(
                pk=entity,
                sk=keys.day_sk(day),
                add=dict(tally.counts),
                set=sets,
                set_if_absent={"first_at": tally.first_at} if tally.first_at else {},
                only_open=True,
            )
        )
    return updates


def total_updates(tallies: DayTallies) -> list[CounterUpdate]:
    """Live ``TOTAL`` updates from the Day tallies actually applied: the four measures only.

    Lifetime breakdowns live in ``CLOSED`` (closed Days); keeping TOTAL small keeps each
    live update at 1 WRU, and nothing reads lifetime breakdowns live.
    """
    per_entity: dict[Entity, Tally] = {}
    for (entity, _day), tally in sorted(tallies.items()):
        per_entity.setdefault(entity, Tally()).merge(tally)
    updates = []
    for entity, tally in sorted(per_entity.items()):
        add = {m: tally.counts[m] for m in MEASURES if tally.counts[m]}
        add["v"] = tally.counts["v"]  # every TOTAL has `v` (0 with only Impressions)
        add[REVISION] = 1
        sets: dict[str, Any] = {}
        if is_post(entity) and tally.owner:
            sets["owner"] = tally.owner
        if tally.last_at:
            sets["last_at"] = tally.last_at
        updates.append(
            CounterUpdate(
                pk=entity,
                sk=keys.TOTAL_SK,
                add=add,
                set=sets,
                set_if_absent={"first_at": tally.first_at} if tally.first_at else {},
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


def cap_open_ended(counts: Mapping[str, int], cap: int = OPEN_ENDED_CAP) -> dict[str, int]:
    """Keep the ``cap - 1`` largest values of each open-ended breakdown; the rest add up
    in ``{measure}{dimension}:~other`` (sums stay exact, the tail loses its names)."""
    groups: dict[str, list[str]] = {}
    for name in counts:
        split = split_breakdown(name)
        if split is not None and split[1] in OPEN_ENDED:
            groups.setdefault(f"{split[0]}{split[1]}", []).append(name)
    out = dict(counts)
    for prefix, names in groups.items():
        if len(names) <= cap:
            continue
        other = f"{prefix}:{OTHER}"
        named = sorted((n for n in names if n != other), key=lambda n: (-counts[n], n))
        rest = sum(counts[n] for n in named[cap - 1 :]) + counts.get(other, 0)
        for name in named[cap - 1 :]:
            del out[name]
        out[other] = rest
    return out
