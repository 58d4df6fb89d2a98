"""The live path's writes: open Days' counters, the close's activity markers, the stream position."""

from __future__ import annotations

from chalicelib.storage.ports import AggregateStore


class LiveCounters:
    items: AggregateStore
