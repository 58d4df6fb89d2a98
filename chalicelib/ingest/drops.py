"""Counted drop reasons: every dropped message is counted by reason, never raised.

Counts are buffered in the process and flushed to the ``DropStore`` at most every
``flush_s`` seconds (0 = at once), so a flood of bots does not double the writes.
Each count is also emitted at once as a CloudWatch EMF metric when a sink is given (in
Lambda): those survive a container that is reclaimed before its next flush.
"""

from __future__ import annotations

import threading
from collections import Counter

from chalicelib.clock import Clock
from chalicelib.metrics import Sink
from chalicelib.storage import keys
from chalicelib.storage.ports import DropStore


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
        self._last_flush = clock.now()

    def accepted(self, counted: bool) -> None:
        """A look that was stored (metrics only: the counters come from the stream)."""
        if self._sink is not None:
            self._sink({"accepted": 1, "counted": int(counted)}, self._clock.now())

    def count(self, reason: str, n: int = 1) -> None:
        now = self._clock.now()
        if self._sink is not None:
            self._sink({f"drop_{reason}": n}, now)
        with self._lock:
            self._pending.setdefault(keys.day_of(now), Counter())[reason] += n
        if (now - self._last_flush).total_seconds() >= self._flush_s:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = self._clock.now()
        for day, counts in pending.items():
            self._store.add_drops(day, counts)
