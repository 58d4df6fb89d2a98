"""What VTS counts: measures, breakdown dimensions, and the counts of one look.

One stored look becomes increments named ``{measure}{dimension}:{value}`` beside its measure,
such as ``v``, ``vc:BR``, ``vh:13`` (and ``av...`` when the Visitor is signed in). These
names are the vocabulary of the live path, the exact close and the readers alike, so all
three count the same way. A new breakdown dimension is added here (``DIMENSIONS``,
``event_counts``), in the storage of closed Days if it needs a place there, and in the
stats response; nothing else names dimensions.

``Target`` is whose figures they are (a post, an artist, the site); ``Tally`` sums looks
for one Target and Day; ``Recount`` is one Target's exact Day (with its Visitors) as the
close hands it to storage; ``DayCounters`` is one Day as a reader gets it back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.days import iso
from chalicelib.model import ViewEvent

# v: Views, i: Impressions; av/ai: the same by signed-in Visitors.
MEASURES = ("v", "i", "av", "ai")
# c: country, d: device, s: source, ch: channel, po: play order, r: referrer, h: UTC hour.
DIMENSIONS = ("c", "d", "s", "ch", "po", "r", "h")
UNKNOWN_COUNTRY = "??"
NO_CHANNEL = "-"
# Dimensions whose values are open-ended (any token, any domain): their long tail adds up
# under OTHER, in live items as in closed Days, so sums stay exact.
OPEN_ENDED = ("ch", "r")
OTHER = "~other"

TargetKind = Literal["post", "artist", "site"]


@dataclass(frozen=True, order=True)
class Target:
    """Whose figures: a post (``id`` its decimal id), an artist (``id``) or the site."""

    kind: TargetKind
    id: str = ""

    @classmethod
    def post(cls, post_id: int) -> Target:
        return cls("post", str(post_id))

    @classmethod
    def artist(cls, artist_id: str) -> Target:
        return cls("artist", artist_id)

    @property
    def post_id(self) -> int:
        if self.kind != "post":
            raise ValueError(f"{self} is not a post")
        return int(self.id)


SITE = Target("site")


def targets_of(event: ViewEvent) -> tuple[Target, Target, Target]:
    """Where one look counts: its post, its artist (the owner then), the site."""
    return Target.post(event.post_id), Target.artist(event.owner_id), SITE


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


def split_breakdown(name: str) -> tuple[str, str, str] | None:
    """``"avc:BR"`` -> ``("av", "c", "BR")``; None for a name that is not a breakdown."""
    prefix, sep, value = name.partition(":")
    if not sep or not value:
        return None
    for measure in ("av", "ai", "v", "i"):
        if prefix.startswith(measure) and prefix[len(measure) :] in DIMENSIONS:
            return measure, prefix[len(measure) :], value
    return None


def is_counter(name: str) -> bool:
    """A measure or one of its breakdowns."""
    return name in MEASURES or split_breakdown(name) is not None


def counter_names(item: Mapping[str, Any]) -> dict[str, int]:
    """The counters among some named values (a stored item's attributes, say)."""
    return {
        name: value
        for name, value in item.items()
        if not isinstance(value, bool) and isinstance(value, int) and is_counter(name)
    }


def measures_only(counts: Mapping[str, int]) -> dict[str, int]:
    return {m: int(counts.get(m, 0)) for m in MEASURES if counts.get(m)}


def without_open_ended(counts: Mapping[str, int]) -> dict[str, int]:
    """The counts without the open-ended breakdowns (channels, referrers)."""
    return {
        name: n
        for name, n in counts.items()
        if (split := split_breakdown(name)) is None or split[1] not in OPEN_ENDED
    }


def apportion(counts: Mapping[str, int], numerator: int, denominator: int) -> dict[str, int]:
    """Scale counts by numerator/denominator in integers (largest remainder), so a scaled
    breakdown still adds up to the scaled total."""
    if denominator <= 0 or numerator <= 0:
        return {}
    if numerator >= denominator:
        return dict(counts)
    total = sum(counts.values())
    target = (total * numerator * 2 + denominator) // (2 * denominator)
    floors = {k: n * numerator // denominator for k, n in counts.items()}
    rests = sorted(counts, key=lambda k: (-(counts[k] * numerator % denominator), k))
    for key in rests[: max(0, target - sum(floors.values()))]:
        floors[key] += 1
    return {k: n for k, n in floors.items() if n}


def breakdowns(counts: Mapping[str, int]) -> list[tuple[str, str, str, int]]:
    """(measure, dimension, value, n) of every non-zero breakdown counter."""
    out = []
    for name, n in counts.items():
        split = split_breakdown(name)
        if split is not None and n:
            out.append((*split, int(n)))
    return out


@dataclass
class Tally:
    """What some looks add to one Target and Day: counters, first/last View, the post's owner."""

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


DayTallies = dict[tuple[Target, str], Tally]


def fold(events: Iterable[ViewEvent]) -> DayTallies:
    """One Tally per (Target, Day) touched by the events."""
    tallies: DayTallies = {}
    for event in events:
        for target in targets_of(event):
            tallies.setdefault((target, event.day), Tally()).add(event)
    return tallies


@dataclass
class Recount:
    """One Target's exact Day: counters, and the Visitors behind its Views."""

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

    def add_unnamed(self, tally: Tally) -> None:
        """Counts whose Visitors are unknown: one distinct Visitor per View (a post's
        Views are unique per Visitor and Day)."""
        self.tally.merge(tally)
        self.unnamed += int(tally.counts["v"])
        self.unnamed_signed_in += int(tally.counts["av"])

    @property
    def looked(self) -> bool:
        """Whether the Target had any stored look (View or Impression) that Day."""
        return bool(self.tally.counts["v"] or self.tally.counts["i"])

    @property
    def unique(self) -> dict[str, int]:
        """Distinct Visitors of its Views: all (``v``) and signed in (``av``)."""
        return {
            "v": len(self.visitors) + self.unnamed,
            "av": len(self.signed_in) + self.unnamed_signed_in,
        }


@dataclass
class DayCounters:
    """One UTC Day as a reader gets it: totals and breakdowns per measure; a closed Day
    also its exact distinct Visitors per measure (``unique``)."""

    day: str
    closed: bool = False
    totals: dict[str, int] = field(default_factory=dict)
    parts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    unique: dict[str, int] = field(default_factory=dict)
    first_at: str | None = None
    last_at: str | None = None

    def total(self, measure: str) -> int:
        return self.totals.get(measure, 0)

    def breakdown(self, measure: str, dimension: str) -> dict[str, int]:
        return self.parts.get(measure, {}).get(dimension, {})

    @classmethod
    def from_counts(cls, day: str, named: Mapping[str, Any]) -> DayCounters:
        """A Day from counters by name (an open Day's live figures); values that are not
        counts are ignored, as are names that are not counters."""
        out = cls(day=day)
        for name, value in named.items():
            if name in MEASURES:
                out.totals[name] = _count(value)
                continue
            split = split_breakdown(name)
            if split is None:
                continue
            measure, dimension, key = split
            count = _count(value)
            if count:
                out.parts.setdefault(measure, {}).setdefault(dimension, {})[key] = count
        first, last = named.get("first_at"), named.get("last_at")
        out.first_at = str(first) if first else None
        out.last_at = str(last) if last else None
        return out


def _count(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
