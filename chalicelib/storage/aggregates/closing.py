"""The close's side: which posts were active, their live figures, and the write protocol of a closed Day."""

from __future__ import annotations

from chalicelib.storage.ports import AggregateStore


class ClosedDays:
    items: AggregateStore
