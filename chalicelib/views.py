"""Storing one View: the step both recorders end with (web: chalicelib/ingest/web.py,
players: chalicelib/players/pipeline.py).

A View is counted once per (Post, Day, Visitor); the store's conditional write decides.
What that write confirmed is remembered in the container (``chalicelib/known.py``).
"""

from __future__ import annotations

from chalicelib.known import KnownViews
from chalicelib.model import ViewEvent
from chalicelib.storage.ports import EventStore


class ViewKeeper:
    """Stores Views, asking the store about a (Post, Day, Visitor) key at most once.

    A key the store confirmed, stored or refused as present, stays held for its whole Day, so
    it is remembered and the next View with that key is a duplicate without a write: a refused
    conditional write is charged a write unit like a stored one, for the same answer. A write
    that failed (raised) confirmed nothing and is not remembered, so its retry is written.
    Share one ``KnownViews`` between recorders of one container: a web View and a player's
    View of one Post on one Day by one Visitor are one key.
    """

    def __init__(self, events: EventStore, known: KnownViews) -> None:
        self._events = events
        self._known = known

    def store(self, event: ViewEvent) -> bool:
        """True when the View is new (counted); False for a duplicate, known in this container
        or refused by the store."""
        if self._known.holds(event):
            return False
        counted = self._events.put_view(event)
        self._known.remember(event)
        return counted
