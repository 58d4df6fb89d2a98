"""In-memory fakes of the storage ports, for unit tests. They pass the same contract tests."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.model import HotMark, PlayerRecord, PostRecord, ViewEvent
from chalicelib.storage import codec, gate, keys
from chalicelib.storage.ports import Admission, GateClaim


class MemoryEventStore:
    def __init__(self, ttl_days: int = 35) -> None:
        self._ttl_days = ttl_days
        self._lock = threading.Lock()
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        # The same items by partition key, so reading one key of a Day is not a scan of all.
        self._partitions: dict[str, dict[str, dict[str, Any]]] = {}
        self.writes = 0

    def _put(self, event: ViewEvent, *, only_new: bool) -> bool:
        # Going through the codec keeps the fake's keys and round trip identical to DynamoDB's.
        return self._keep(codec.event_item(event, self._ttl_days), only_new=only_new)

    def _keep(self, item: dict[str, Any], *, only_new: bool) -> bool:
        """Store one event item (a put; ``only_new``: conditional on its key being free)."""
        key = (item["pk"], item["sk"])
        with self._lock:
            self.writes += 1
            if only_new and key in self.items:
                return False
            self.items[key] = item
            self._partitions.setdefault(key[0], {})[key[1]] = item
        return True

    def put_view(self, event: ViewEvent) -> bool:
        return self._put(event, only_new=True)

    def put_impression(self, event: ViewEvent) -> None:
        self._put(event, only_new=False)

    def day_events(self, post_id: int, day: str, shard: int | None = None) -> Iterator[ViewEvent]:
        pk = keys.event_pk(post_id, day, shard)
        with self._lock:
            mine = sorted(self._partitions.get(pk, {}).items())
        for _, item in mine:
            yield codec.event_from_item(item)


class MemoryRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.posts: dict[int, PostRecord] = {}
        self.hot: dict[int, HotMark] = {}
        self.players: dict[str, PlayerRecord] = {}
        # (until_ms, token of the holder)
        self._once: dict[tuple[str, str], tuple[int, str | None]] = {}
        # Rate slots and player gates: plain items laid out as in DynamoDB (storage/gate.py),
        # one per (scope, subject), so a gate honours a slot taken by ``take_slot``.
        self.rate_items: dict[tuple[str, str], dict[str, Any]] = {}

    def get_post(self, post_id: int) -> PostRecord | None:
        return self.posts.get(post_id)

    def get_posts(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        return {i: self.posts[i] for i in set(post_ids) if i in self.posts}

    def get_posts_with_hot(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        found = self.get_posts(post_ids)
        return {i: replace(post, hot=self.hot.get(i)) for i, post in found.items()}

    def mark_hot(self, post_id: int, mark: HotMark) -> None:
        with self._lock:
            held = self.hot.get(post_id)
            if held is None or held.until < mark.until:
                self.hot[post_id] = mark

    def put_post(self, post: PostRecord) -> None:
        # As stored in DynamoDB: the registration alone, never a hot mark.
        self.posts[post.post_id] = replace(post, hot=None)

    def put_posts(self, posts: Iterable[PostRecord]) -> None:
        for post in posts:
            self.put_post(post)

    def delete_post(self, post_id: int) -> bool:
        return self.posts.pop(post_id, None) is not None

    def get_player(self, player_key: str) -> PlayerRecord | None:
        return self.players.get(player_key)

    def get_players(self, player_keys: Iterable[str]) -> dict[str, PlayerRecord]:
        return {k: self.players[k] for k in set(player_keys) if k in self.players}

    def put_player(self, player: PlayerRecord) -> None:
        self.players[player.player_key] = player

    def put_players(self, players: Iterable[PlayerRecord]) -> None:
        for player in players:
            self.put_player(player)

    def delete_player(self, player_key: str) -> bool:
        return self.players.pop(player_key, None) is not None

    def take_slot(
        self, scope: str, subject: str, interval_s: int, now: datetime, token: str | None = None
    ) -> float | None:
        now_ms = int(now.timestamp() * 1000)
        with self._lock:
            item = self.rate_items.setdefault((scope, subject), {})
            held_ms = int(item.get("until_ms", 0))
            if held_ms > now_ms and (token is None or item.get("tok") != token):
                return (held_ms - now_ms) / 1000
            item["until_ms"] = now_ms + interval_s * 1000
            if token is None:
                item.pop("tok", None)
            else:
                item["tok"] = token
        return None

    def mark_once(
        self, scope: str, subject: str, ttl_s: int, now: datetime, token: str | None = None
    ) -> bool:
        now_ms = int(now.timestamp() * 1000)
        with self._lock:
            held = self._once.get((scope, subject))
            if held is not None and held[0] > now_ms and (token is None or held[1] != token):
                return False
            self._once[(scope, subject)] = (now_ms + ttl_s * 1000, token)
        return True

    def admit(self, claim: GateClaim, *, unless_marked: bool = True) -> Admission:
        size = gate.checked_ring_size(claim)
        now_ms = claim.now_ms
        with self._lock:
            item = self.rate_items.setdefault((claim.scope, claim.subject), {})
            found = gate.read(item, claim, size)
            marked = unless_marked and found.marked_until_ms > now_ms
            if found.repeat or found.wait_s is not None or marked:
                return found
            index = gate.ring_index(claim, size)
            item["until_ms"] = now_ms + claim.interval_s * 1000
            item[f"m{index}"] = gate.message_digest(claim.message)
            item[f"u{index}"] = now_ms + claim.window_s * 1000
            item[f"t{index}"] = gate.token_tag(claim.token)
            item["expires_at"] = gate.expires_at(claim)
            if claim.token is None:
                item.pop("tok", None)
            else:
                item["tok"] = claim.token
        return Admission(admitted=True)

    def peek_gate(self, claim: GateClaim) -> Admission:
        size = gate.checked_ring_size(claim)
        with self._lock:
            item = dict(self.rate_items.get((claim.scope, claim.subject), {}))
        return gate.read(item, claim, size)

    def note_marked(self, claim: GateClaim, until_ms: int) -> Admission:
        size = gate.checked_ring_size(claim)
        with self._lock:
            item = self.rate_items.setdefault((claim.scope, claim.subject), {})
            if int(item.get("mu", 0)) < until_ms:
                item["mu"] = until_ms
            return gate.read(item, claim, size)


class MemoryDropStore:
    def __init__(self) -> None:
        self._days: dict[str, dict[str, int]] = {}
        self._last: dict[str, str] | None = None

    def note_last_report(self, report: Mapping[str, str]) -> None:
        if self._last is None or self._last.get("at", "") < report.get("at", ""):
            self._last = dict(report)

    def last_report(self) -> dict[str, str] | None:
        return dict(self._last) if self._last is not None else None

    def add_drops(self, day: str, counts: Mapping[str, int]) -> None:
        bucket = self._days.setdefault(day, {})
        for reason, n in counts.items():
            if n:
                bucket[reason] = bucket.get(reason, 0) + n

    def get_drops(self, days: Iterable[str]) -> dict[str, int]:
        totals: dict[str, int] = {}
        for day in days:
            for reason, n in self._days.get(day, {}).items():
                totals[reason] = totals.get(reason, 0) + n
        return totals
