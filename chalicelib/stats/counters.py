"""One UTC Day's counters, typed: decoded from an open Day's live ``D#{day}`` item, or
built from a closed Day's series row (stats/runner.py).

Live attribute names are ``{measure}{dimension}:{value}``; measures ``v``/``i`` (Views,
Impressions) and ``av``/``ai`` (the same for signed-in Visitors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The live item's names are the rollup's (one definition for writer and reader).
from chalicelib.rollup.counters import MEASURES, split_breakdown


@dataclass
class DayCounters:
    """One Day: totals and breakdowns per measure; a closed Day also its exact distinct
    Visitors per measure (``unique``)."""

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


def _count(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def day_counters(day: str, item: Mapping[str, Any]) -> DayCounters:
    """An open Day from its live item (the close never touches those any more)."""
    out = DayCounters(day=day)
    for name, value in item.items():
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
    first, last = item.get("first_at"), item.get("last_at")
    out.first_at = str(first) if first else None
    out.last_at = str(last) if last else None
    return out
