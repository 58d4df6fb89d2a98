"""Storing one look: the step both recorders end with (web: chalicelib/ingest/web.py,
players: chalicelib/players/pipeline.py).

A View is counted once per (Post, Day, Visitor); the store's conditional write decides.
What that write confirmed is remembered in the container (``chalicelib/known.py``).

A hot post's looks go to its write shards (docs/adr/0016-write-shards.md): the caller says
how many the post has (``PostRecord.shards_at``) and the Visitor's hash picks one
(``storage.keys.write_shard``), the same one for every look of that Visitor, so the dedup
stays one conditional write. When the Day's base key is throttled, the look is written once
more under the Visitor's shard and the post is held hot in this container (``Fallback``):
a sudden spike answers 201, not 503, before the stream handler marks the post hot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol, TypeVar

from chalicelib.errors import StorageThrottled
from chalicelib.known import KnownViews
from chalicelib.model import ViewEvent
from chalicelib.storage.keys import write_shard
from chalicelib.storage.ports import EventStore

T = TypeVar("T")


class Fallback(Protocol):
    """Who decides where a throttled look goes next (the recorders' post cache)."""

    def fallback_shards(self, post_id: int, at: datetime) -> int:
        """The base key of the post's Day was throttled at ``at``: hold the post hot in this
        container and answer its write shards (0: write shards are off)."""
        ...


def on_shards(event: ViewEvent, shards: int) -> ViewEvent:
    """The look placed under its Visitor's write shard of ``shards`` (0: the base key)."""
    return replace(event, shard=write_shard(event.visitor, shards)) if shards else event


class ViewKeeper:
    """Stores looks: Views asking the store about a (Post, Day, Visitor) key at most once.

    A key the store confirmed, stored or refused as present, stays held for its whole Day, so
    it is remembered and the next View with that key is a duplicate without a write: a refused
    conditional write is charged a write unit like a stored one, for the same answer. A write
    that failed (raised) confirmed nothing and is not remembered, so its retry is written.
    Share one ``KnownViews`` between recorders of one container: a web View and a player's
    View of one Post on one Day by one Visitor are one key.

    A throttled write on the base key is retried once on the Visitor's shard (module
    docstring). A throttled write refused nothing, so this never stores a look twice; but a
    Visitor whose View was already stored under the base key is stored again under the shard
    and answered as counted: the live counters count it twice (they may be above the truth),
    and the close, which counts a Visitor once across a Day's keys, stays exact.
    """

    def __init__(
        self, events: EventStore, known: KnownViews, fallback: Fallback | None = None
    ) -> None:
        self._events = events
        self._known = known
        self._fallback = fallback

    def store(self, event: ViewEvent, shards: int = 0) -> bool:
        """True when the View is new (counted); False for a duplicate, known in this container
        or refused by the store. ``shards``: the post's write shards (0: not hot)."""
        if self._known.holds(event):
            return False
        counted = self._put(self._events.put_view, event, shards)
        self._known.remember(event)
        return counted

    def store_impression(self, event: ViewEvent, shards: int = 0) -> None:
        """Store an Impression (never deduplicated), on the post's shards when it is hot."""
        self._put(self._events.put_impression, event, shards)

    def _put(self, put: Callable[[ViewEvent], T], event: ViewEvent, shards: int) -> T:
        try:
            return put(on_shards(event, shards))
        except StorageThrottled:
            spread = 0
            if not shards and self._fallback is not None:
                spread = self._fallback.fallback_shards(event.post_id, event.occurred_at)
            if not spread:
                raise
            return put(on_shards(event, spread))
