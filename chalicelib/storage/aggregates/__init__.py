"""The ``aggregates`` table, owned whole: the services speak of Targets, Days and counts;
this package alone knows its items (layout.py), how a closed Day is kept (closed.py), how
the live counters and the stream's markers are written (live.py), the close's write
protocol (closing.py) and the read plan of a stats request (reading.py).

``Aggregates`` is the facade over the generic item adapters (items_dynamodb.py, the real
table; items_memory.py, the in-memory fake that passes the same contract tests).
"""

from __future__ import annotations

from chalicelib.storage.aggregates.closing import ClosedDays
from chalicelib.storage.aggregates.history import ImportedDays
from chalicelib.storage.aggregates.live import LiveCounters
from chalicelib.storage.aggregates.reading import Readings
from chalicelib.storage.ports import AggregateStore


class Aggregates(LiveCounters, ClosedDays, Readings, ImportedDays):
    """The aggregates table in the language of the domain (docs/data-model.md)."""

    def __init__(self, items: AggregateStore) -> None:
        self.items = items
