"""Domain values shared by every capability: what a recorded look is, what a post and a player are."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from chalicelib.errors import BadRequest

Intent = Literal["view", "impression"]
Source = Literal["web", "widget", "api", "player"]
Device = Literal["desktop", "mobile", "tablet", "player", "bot"]

SOURCES: tuple[Source, ...] = ("web", "widget", "api", "player")
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet", "player")
_POST_ID = re.compile(r"^[0-9]{1,18}$")


def parse_post_id(text: object) -> int:
    """A post id: a positive integer, as an int or as decimal text."""
    if isinstance(text, bool):
        raise BadRequest("post_id must be a positive integer", code="invalid_post_id")
    if isinstance(text, int):
        number = text
    elif isinstance(text, str) and _POST_ID.match(text):
        number = int(text)
    else:
        raise BadRequest("post_id must be a positive integer", code="invalid_post_id")
    if not 0 < number < 2**63:
        raise BadRequest("post_id must be a positive integer", code="invalid_post_id")
    return number


@dataclass(frozen=True)
class HotMark:
    """A post looked at too fast for one partition key: until ``until``, its looks go to
    ``shards`` write shards (chalicelib/rollup/hot.py marks it; docs/adr/0016)."""

    shards: int
    until: datetime


@dataclass(frozen=True)
class PostRecord:
    """A registered post. Only a ``counting`` post's looks are stored; a hidden or deleted
    one keeps its stats readable by its owner (DESIGN §7).

    ``hot`` is not part of the registration (registering never sets or compares it): the
    registry keeps it in an item of its own, read with the post by the recorders' cache.
    """

    post_id: int
    owner_id: str
    registered_at: datetime
    sqid: str | None = None  # Makapix's public id: the post's page is {site}/p/{sqid}
    title: str | None = None
    art_url: str | None = None  # https only
    visible: bool = True
    deleted: bool = False
    hot: HotMark | None = field(default=None, compare=False)

    @property
    def counting(self) -> bool:
        return self.visible and not self.deleted

    def shards_at(self, at: datetime) -> int:
        """The write shards of a look at ``at``: 0 (the Day's base key) unless hot then."""
        return self.hot.shards if self.hot is not None and at < self.hot.until else 0


@dataclass(frozen=True)
class PlayerRecord:
    player_key: str
    owner_id: str
    registered_at: datetime
    country: str | None = None
    timezone: str | None = None
    name: str | None = None
    revoked: bool = False  # a torn-down frame: its reports are refused as unregistered


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
    # Where the store keeps it: a hot post's write shard (chalicelib/views.py picks it), or
    # None for the Day's base key. The same look wherever it is kept.
    shard: int | None = field(default=None, compare=False)

    @property
    def day(self) -> str:
        # The date as text, as strftime("%Y-%m-%d") gives it, at a seventh of its cost: the
        # recording path and the stream handler ask for it several times per look.
        return self.occurred_at.date().isoformat()
