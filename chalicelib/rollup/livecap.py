"""The stream container's bound on open-ended names in live Day items (``LiveCap``)."""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.counts import OPEN_ENDED, OTHER, DayTallies, Target, split_breakdown

# Named open-ended values a live Day item keeps per measure and container (LiveCap).
LIVE_CAPS = {"v": 100, "i": 25, "av": 25, "ai": 25}


class LiveCap:
    """Keeps a live Day item's open-ended breakdowns (channels, referrers) from growing
    without bound: per Target, Day and measure, the first ``cap`` values this container sends
    keep their names; later new ones add up under ``~other``. Sums stay exact and ``v``/``i``
    untouched; only the names in the tail of a busy open Day are lost, until the close
    recounts the Day from its raw events.

    The memory is per container, so an item can take ``cap`` names per container that
    wrote to it: a bound, not an exact cap. Busy posts' live items are read by every stats
    request that includes today, so their size is read cost (docs/adr/0008).
    """

    def __init__(self, caps: Mapping[str, int] | None = None, max_entries: int = 50_000) -> None:
        self._caps = dict(caps or LIVE_CAPS)
        self._seen: dict[tuple[Target, str, str], set[str]] = {}
        self._max_entries = max_entries

    def apply(self, tallies: DayTallies) -> DayTallies:
        if len(self._seen) > self._max_entries:
            self._seen.clear()
        for target, day in tallies:
            tally = tallies[(target, day)]
            for name in sorted(tally.counts):
                split = split_breakdown(name)
                if split is None or split[1] not in OPEN_ENDED or split[2] == OTHER:
                    continue
                measure, dimension, value = split
                seen = self._seen.setdefault((target, day, measure + dimension), set())
                if value in seen:
                    continue
                if len(seen) < self._caps.get(measure, 0):
                    seen.add(value)
                    continue
                tally.counts[f"{measure}{dimension}:{OTHER}"] += tally.counts.pop(name)
        return tallies
