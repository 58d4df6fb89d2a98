"""Domain values shared by every capability: what a recorded look is, what a post and a player are."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Intent = Literal["view", "impression"]
Source = Literal["web", "widget", "api", "player"]
Device = Literal["desktop", "mobile", "tablet", "player", "bot"]

SOURCES: tuple[Source, ...] = ("web", "widget", "api", "player")
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet", "player")


@dataclass(frozen=True)
class PostRecord:
    post_id: int
    owner_id: str
    registered_at: datetime


@dataclass(frozen=True)
class PlayerRecord:
    player_key: str
    owner_id: str
    registered_at: datetime
    country: str | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class ViewEvent:
    """One enriched look that passed the edge, ready to be stored.

    ``occurred_at`` is the server's receive time (UTC): it decides the Day. A player's own
    clock, when set, travels as ``device_at`` for reference only.
    """

    post_id: int
    owner_id: str
    intent: Intent
    occurred_at: datetime
    visitor: str
    authenticated: bool
    source: Source
    device: str
    country: str | None = None
    channel: str | None = None
    channel_context: str | None = None
    play_order: int | None = None
    referrer_domain: str | None = None
    playlist_id: str | None = None
    player_key: str | None = None
    device_at: datetime | None = None
    timezone: str | None = None
    # A keyed hash of the client's network (web looks only): chalicelib/netcap.py.
    net: str | None = None
    event_id: str | None = field(default=None, compare=False)

    @property
    def day(self) -> str:
        return self.occurred_at.strftime("%Y-%m-%d")
