"""Counted drop reasons: every dropped message is counted by reason, never raised.

Counts are buffered in the process and flushed to the ``DropStore`` at most every
``flush_s`` seconds (0 = at once), so a flood of bots does not double the writes.
CloudWatch EMF metrics (see ``metrics``) remain the authoritative per-invocation record.
"""

from __future__ import annotations

import threading
from collections import Counter

from chalicelib.clock import Clock
from chalicelib.storage import keys
from chalicelib.storage.ports import DropStore


class DropCounter:
    def __init__(self, store: DropStore, clock: Clock, flush_s: int) -> None:
        self._store = store
        self._clock = clock
        self._flush_s = flush_s
        self._lock = threading.Lock()
        self._pending: dict[str, Counter[str]] = {}
        self._last_flush = clock.now()

    def count(self, reason: str, n: int = 1) -> None:
        now = self._clock.now()
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
