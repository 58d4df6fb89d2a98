"""What this container already knows the store holds, so the recording path need not ask twice.

Only facts the store itself confirmed are kept: a View key that a conditional put stored or
refused as a duplicate, and the end of a rate slot that a claim took or was refused by. A
View stays stored for its whole Day and a slot stays taken until its end, so a remembered
fact answers exactly as the store would, without a write (a refused conditional write is
charged like a successful one). Both memories are bounded LRUs: a container that forgets, or
is reclaimed, only loses the saving, never a count.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from datetime import datetime
from typing import Generic, TypeVar

from chalicelib.model import ViewEvent

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# 100k keys of 16 bytes cost about 15 MB in an OrderedDict: small beside a 256 MB function.
DEFAULT_MAX_ENTRIES = 100_000


class Lru(Generic[K, V]):
    """A thread-safe map that forgets its least recently used key when full."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max = max(1, max_entries)
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _view_key(event: ViewEvent) -> bytes:
    # The store's dedup key is (Post, Day, Visitor); a digest keeps each entry small.
    text = f"{event.post_id}\x00{event.day}\x00{event.visitor}"
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class KnownViews:
    """(Post, Day, Visitor) keys whose View the store confirmed it holds."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._keys: Lru[bytes, bool] = Lru(max_entries)

    def holds(self, event: ViewEvent) -> bool:
        """True when this container saw the store confirm this View's key: a duplicate."""
        return self._keys.get(_view_key(event)) is not None

    def remember(self, event: ViewEvent) -> None:
        """Call only after the store answered for this key (stored, or refused as present)."""
        self._keys.put(_view_key(event), True)

    def __len__(self) -> int:
        return len(self._keys)


def epoch_ms(at: datetime) -> int:
    """Milliseconds since the epoch, computed as the registry adapters compute slot ends."""
    return int(at.timestamp() * 1000)


class KnownSlots:
    """Rate slots known taken: subject -> the end of the slot (epoch ms) the store reported."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._until: Lru[str, int] = Lru(max_entries)

    def wait_s(self, subject: str, now: datetime) -> float | None:
        """Seconds until the known slot of ``subject`` frees; None when none is known taken."""
        until_ms = self._until.get(subject)
        now_ms = epoch_ms(now)
        if until_ms is None or until_ms <= now_ms:
            return None
        return (until_ms - now_ms) / 1000

    def remember(self, subject: str, until_ms: int) -> None:
        """The store said the slot of ``subject`` is held until ``until_ms`` (ours or not)."""
        known = self._until.get(subject)
        # Slot ends only move forward; keep the later of two answers.
        self._until.put(subject, until_ms if known is None else max(known, until_ms))
