"""A small thread-safe TTL cache for registrations read on the hot path (posts, players)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Remembers each lookup (including "absent") for ``ttl_s``; cleared whole when full."""

    def __init__(
        self, ttl_s: int, monotonic: Callable[[], float] = time.monotonic, max_entries: int = 50_000
    ) -> None:
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V | None]] = {}

    def get(self, key: K, load: Callable[[K], V | None]) -> V | None:
        """The value of ``key``, cached or loaded (``None``: absent, remembered as such)."""

        def load_one(keys: list[K]) -> dict[K, V]:
            value = load(keys[0])
            return {} if value is None else {keys[0]: value}

        return self.get_many([key], load_one).get(key)

    def get_many(
        self, keys: Iterable[K], load_many: Callable[[list[K]], Mapping[K, V]]
    ) -> dict[K, V]:
        """The values of ``keys`` found (cached or loaded); absent keys are missing from the
        answer and remembered as absent. One ``load_many`` call for every key not cached."""
        now = self._monotonic()
        found: dict[K, V] = {}
        missing: list[K] = []
        with self._lock:
            for key in dict.fromkeys(keys):
                hit = self._entries.get(key)
                if hit is not None and hit[0] > now:
                    if hit[1] is not None:
                        found[key] = hit[1]
                else:
                    missing.append(key)
        if not missing:
            return found
        loaded = load_many(missing)
        with self._lock:
            if len(self._entries) + len(missing) > self._max:
                self._entries.clear()
            for key in missing:
                value = loaded.get(key)
                self._entries[key] = (now + self._ttl_s, value)
                if value is not None:
                    found[key] = value
        return found

    def put(self, key: K, value: V) -> None:
        """Hold ``value`` for ``key`` for ``ttl_s`` from now (what this container learnt)."""
        with self._lock:
            if key not in self._entries and len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (self._monotonic() + self._ttl_s, value)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
