"""In-memory fake of the ``AggregateStore`` port (unit tests, benches). It passes the same
contract tests as ``DynamoAggregateStore`` (tests/integration/test_aggregate_store_contract.py)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any

from chalicelib.counts import Target
from chalicelib.storage import codec
from chalicelib.storage.aggregates import layout
from chalicelib.storage.aggregates.cursor import (
    decode_cursor,
    encode_cursor,
    index_key,
    lifetime_rows,
)
from chalicelib.storage.ports import CounterUpdate

# DynamoDB's item size limit (names + values).
MAX_ITEM_BYTES = 400 * 1024

Key = tuple[str, str]


class MemoryAggregateStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[Key, dict[str, Any]] = {}

    # ---- writes -----------------------------------------------------------------------------

    def add_counters(self, updates: Iterable[CounterUpdate]) -> list[tuple[CounterUpdate, str]]:
        refused: list[tuple[CounterUpdate, str]] = []
        with self._lock:
            for update in updates:
                key = (update.pk, update.sk)
                old = self.items.get(key)
                new: dict[str, Any] = (
                    copy.deepcopy(old) if old is not None else {"pk": update.pk, "sk": update.sk}
                )
                for name, n in update.add.items():
                    new[name] = int(new.get(name, 0)) + int(n)
                for name, value in update.set.items():
                    new[name] = copy.deepcopy(value)
                for name, value in update.set_if_absent.items():
                    new.setdefault(name, copy.deepcopy(value))
                if codec.item_size(new) > MAX_ITEM_BYTES:
                    refused.append((update, "too_large"))
                    continue
                self.items[key] = new
        return refused

    def put_items(self, items: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            for item in items:
                self.items[(item["pk"], item["sk"])] = _clean(item)

    def put_if(self, item: dict[str, Any], attribute: str, expected: Any) -> bool:
        key = (item["pk"], item["sk"])
        with self._lock:
            current = (self.items.get(key) or {}).get(attribute)
            if current != expected:
                return False
            self.items[key] = _clean(item)
        return True

    # ---- reads ------------------------------------------------------------------------------

    def get_items(self, keys_: Iterable[Key]) -> dict[Key, dict[str, Any]]:
        with self._lock:
            return {key: copy.deepcopy(self.items[key]) for key in set(keys_) if key in self.items}

    def query_range(self, pk: str, first_sk: str, last_sk: str) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                copy.deepcopy(item)
                for (ipk, isk), item in self.items.items()
                if ipk == pk and first_sk <= isk <= last_sk
            ]
        return sorted(found, key=lambda item: str(item["sk"]))

    def query_artist_posts(
        self, artist_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        gpk = layout.pk_of(Target.artist(artist_id))
        after = decode_cursor(cursor, gpk) if cursor else None
        with self._lock:
            indexed = [
                copy.deepcopy(item)
                for item in self.items.values()
                if item.get("gpk") == gpk and isinstance(item.get("v"), int)
            ]
        # Highest Views first; ties in a stable order (the index's own key, descending).
        indexed.sort(key=index_key, reverse=True)
        if after is not None:
            indexed = [item for item in indexed if index_key(item) < after]
        page = indexed[: max(1, limit)]
        more = len(indexed) > len(page)
        rows = lifetime_rows(page)
        return rows, encode_cursor(page[-1]) if more and page else None

    # ---- the close watermark ----------------------------------------------------------------

    def get_watermark(self) -> str | None:
        with self._lock:
            item = self.items.get(layout.watermark_key())
        return str(item["day"]) if item else None

    def advance_watermark(self, day: str) -> bool:
        key = layout.watermark_key()
        with self._lock:
            current = self.items.get(key)
            if current is not None and str(current["day"]) >= day:
                return False
            self.items[key] = {"pk": key[0], "sk": key[1], "day": day}
        return True


def _clean(item: dict[str, Any]) -> dict[str, Any]:
    """A stored copy without None values (DynamoDB keeps no NULL attributes we write)."""
    return {name: copy.deepcopy(value) for name, value in item.items() if value is not None}
