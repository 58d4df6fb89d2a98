"""The readers' side: what one stats request reads for one Target, lifetime figures, an artist's posts."""

from __future__ import annotations

from chalicelib.storage.ports import AggregateStore


class Readings:
    items: AggregateStore
