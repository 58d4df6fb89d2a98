"""Ports: what the services need from storage, as capabilities. Adapters live beside."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.model import HotMark, PlayerRecord, PostRecord, ViewEvent


class EventStore(Protocol):
    """The raw ``events`` table. A look is kept under its Post's Day, or under the write
    shard ``event.shard`` of that Day while the post is hot (storage/keys.py)."""

    def put_view(self, event: ViewEvent) -> bool:
        """Store a View unless this Visitor already has one under the same key (the Post's
        Day, or its shard: a Visitor always has the same shard).

        One conditional write. Returns True when the View is new (counted).
        """
        ...

    def put_impression(self, event: ViewEvent) -> None:
        """Store an Impression under its own unique id (never deduplicated)."""
        ...

    def day_events(self, post_id: int, day: str, shard: int | None = None) -> Iterator[ViewEvent]:
        """Every stored event under one key of a Post's Day: its base key, or write shard
        ``shard`` (the exact daily recount reads each key the Day used, and counts a Visitor
        stored under two of them once)."""
        ...


class Registry(Protocol):
    """Posts, players, rate-limit slots and seen-once markers."""

    def get_post(self, post_id: int) -> PostRecord | None: ...

    def get_posts(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        """The registered posts among ``post_ids`` (batched reads; the absent are missing)."""
        ...

    def get_posts_with_hot(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        """As ``get_posts``, each post with its hot mark (``PostRecord.hot``) if it has one,
        read in the same batch: what the recorders cache."""
        ...

    def mark_hot(self, post_id: int, mark: HotMark) -> None:
        """Keep ``mark`` as the post's hot mark unless it already has one lasting as long
        (a mark is never shortened). Registering the post leaves it alone."""
        ...

    def put_post(self, post: PostRecord) -> None: ...

    def put_posts(self, posts: Iterable[PostRecord]) -> None:
        """Write whole posts (batched writes; the last record of an id wins)."""
        ...

    def delete_post(self, post_id: int) -> bool:
        """Remove a post; False when it was not registered."""
        ...

    def get_player(self, player_key: str) -> PlayerRecord | None: ...

    def get_players(self, player_keys: Iterable[str]) -> dict[str, PlayerRecord]:
        """The registered players among ``player_keys`` (batched reads)."""
        ...

    def put_player(self, player: PlayerRecord) -> None: ...

    def put_players(self, players: Iterable[PlayerRecord]) -> None:
        """Write whole players (batched writes; the last record of a key wins)."""
        ...

    def delete_player(self, player_key: str) -> bool: ...

    def take_slot(
        self, scope: str, subject: str, interval_s: int, now: datetime, token: str | None = None
    ) -> float | None:
        """Claim the next rate-limit slot of ``subject``.

        None when claimed; else the seconds until the slot frees (for ``Retry-After``).
        A claim carrying the same ``token`` as the slot's holder succeeds again: a redelivered
        event (a Lambda retry) is not its own competitor.
        """
        ...

    def mark_once(
        self, scope: str, subject: str, ttl_s: int, now: datetime, token: str | None = None
    ) -> bool:
        """True the first time ``subject`` is seen within ``ttl_s``; False for a repeat.

        A repeat carrying the marker's own ``token`` is True again: it is a redelivery of the
        event that set the marker (a Lambda retry), not a second message.
        """
        ...

    def admit(self, claim: GateClaim, *, unless_marked: bool = True) -> Admission:
        """One conditional write on the claim's gate: take its rate slot (as ``take_slot``)
        and note its message as admitted for ``window_s`` (layout: storage/gate.py).

        Refused, writing nothing, when the message was admitted within its window
        (``repeat``), the slot is held (``wait_s``), or, with ``unless_marked``, seen-once
        markers of refused messages may still be live (``marked_until_ms`` > now). A claim
        with the token of the slot's holder, or of the message's admission, passes that slot
        or repeat check (a Lambda retry). Needs ``interval_s`` > 0 and ``window_s`` <=
        (GATE_MAX_RING - 1) * ``interval_s`` (``storage.gate.ring_size``).
        """
        ...

    def peek_gate(self, claim: GateClaim) -> Admission:
        """What ``admit`` would be refused for, read (strongly consistent), never written:
        ``repeat``, ``wait_s`` and ``marked_until_ms`` as the gate holds them now."""
        ...

    def note_marked(self, claim: GateClaim, until_ms: int) -> Admission:
        """Raise the claim's gate ``marked_until_ms`` to at least ``until_ms`` (one write) and
        answer what the gate then holds: ``repeat`` if the message was admitted within its
        window under another token. ``admitted`` is always False."""
        ...


# A player gate remembers admitted messages in a ring of at most this many slots (< 1 KB).
GATE_MAX_RING = 16


@dataclass(frozen=True)
class GateClaim:
    """A message presented at ``subject``'s gate (``Registry.admit`` and kin): at most one
    admission per ``interval_s``, and each message admitted once per ``window_s``."""

    scope: str
    subject: str
    message: str
    interval_s: int
    window_s: int
    now: datetime
    token: str | None = None  # the delivery's id: the same token again is a redelivery

    @property
    def now_ms(self) -> int:
        return int(self.now.timestamp() * 1000)


@dataclass(frozen=True)
class Admission:
    """A gate's answer (``Registry.admit``): admitted, or what refused the claim."""

    admitted: bool
    repeat: bool = False  # admitted within the window under another token: a retransmission
    wait_s: float | None = None  # the slot is held by another claim: seconds until it frees
    marked_until_ms: int = 0  # seen-once markers of refused messages may be live until then


class DropStore(Protocol):
    """Counters of dropped messages by reason and Day (what ``/v1/health`` reports)."""

    def add_drops(self, day: str, counts: Mapping[str, int]) -> None: ...

    def get_drops(self, days: Iterable[str]) -> dict[str, int]: ...

    def note_last_report(self, report: Mapping[str, str]) -> None:
        """Keep ``report`` (plain strings) as the last player report, unless a later one
        (by its ``at``) is already kept."""
        ...

    def last_report(self) -> dict[str, str] | None: ...


class AggregateStore(Protocol):
    """The ``aggregates`` table: live counter items per post/artist/site and Day, the closed
    Days' series chunks and pieces (storage/aggregates/closed.py), lifetime totals, the close
    watermark. Item formats: docs/data-model.md. Binary attributes come back as bytes."""

    def add_counters(self, updates: Iterable[CounterUpdate]) -> list[tuple[CounterUpdate, str]]:
        """One ``UpdateItem`` (ADD, plus the SETs given) per update: the stream's live path.

        Returns the updates NOT applied, each with why: ``too_large`` (the item would
        outgrow DynamoDB's 400 KB). Anything else raises.
        """
        ...

    def put_items(self, items: Iterable[dict[str, Any]]) -> None:
        """Overwrite whole items (the close's exact recount); batched by 25."""
        ...

    def get_items(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Batch read by key (absent keys are simply missing from the answer)."""
        ...

    def query_range(self, pk: str, first_sk: str, last_sk: str) -> list[dict[str, Any]]:
        """Every item of ``pk`` with first_sk <= sk <= last_sk, in sk order (e.g. a Day's
        ``DAY#{day}`` activity markers)."""
        ...

    def put_if(self, item: dict[str, Any], attribute: str, expected: Any) -> bool:
        """Overwrite one whole item only if its ``attribute`` still equals ``expected`` (None:
        the attribute, or the item, is absent). False when another writer got there first."""
        ...

    def query_artist_posts(
        self, artist_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """An artist's lifetime post items by Views, highest first, paginated by cursor."""
        ...

    def get_watermark(self) -> str | None:
        """The last closed Day, or None before the first close."""
        ...

    def advance_watermark(self, day: str) -> bool:
        """Move the watermark forward to ``day``; never back. False if it already was there."""
        ...


@dataclass(frozen=True)
class CounterUpdate:
    """Counters to ADD to one item, and plain attributes to SET on it."""

    pk: str
    sk: str
    add: Mapping[str, int]
    set: Mapping[str, Any] = field(default_factory=dict)
    set_if_absent: Mapping[str, Any] = field(default_factory=dict)
