"""Registered posts, with a short in-process cache for the recording hot path."""

from __future__ import annotations

import time
from collections.abc import Callable

from chalicelib.clock import Clock
from chalicelib.errors import BadRequest, NotFound
from chalicelib.model import PostRecord
from chalicelib.registry.cache import TtlCache
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.ports import Registry

_OWNER_MAX = 128


def _encodable(text: str) -> bool:
    """False for a str holding half a surrogate pair (JSON's "\\ud800"): no store takes it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_owner_id(owner_id: object) -> str:
    if (
        not isinstance(owner_id, str)
        or not owner_id.strip()
        or len(owner_id) > _OWNER_MAX
        or not _encodable(owner_id)
    ):
        raise BadRequest(
            f"owner_id must be a non-empty string of at most {_OWNER_MAX} characters",
            code="invalid_owner_id",
        )
    return owner_id.strip()


class PostDirectory:
    """Reads posts through a small TTL cache: a post's owner rarely changes, reads cost money."""

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        cache_s: int,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = 50_000,
        aggregates: Aggregates | None = None,
    ) -> None:
        self._registry = registry
        # Keeps each artist's post count so artist stats never list every post to count them.
        self._aggregates = aggregates
        self._clock = clock
        self._cache: TtlCache[int, PostRecord] = TtlCache(cache_s, monotonic, max_entries)

    def get(self, post_id: int) -> PostRecord | None:
        return self._cache.get(post_id, self._registry.get_post)

    def register(self, post_id: int, owner_id: object) -> tuple[PostRecord, bool]:
        """Register or re-own a post. Returns the record and whether it is new."""
        owner = check_owner_id(owner_id)
        existing = self._registry.get_post(post_id)
        record = PostRecord(
            post_id=post_id,
            owner_id=owner,
            registered_at=existing.registered_at if existing else self._clock.now(),
        )
        self._registry.put_post(record)
        self._forget(post_id)
        if existing is None or existing.owner_id != owner:
            self._count_posts(owner, +1)
            if existing is not None:
                self._count_posts(existing.owner_id, -1)
        return record, existing is None

    def delete(self, post_id: int) -> None:
        existing = self._registry.get_post(post_id) if self._aggregates is not None else None
        if not self._registry.delete_post(post_id):
            raise NotFound(f"post {post_id} is not registered", code="unknown_post")
        self._forget(post_id)
        if existing is not None:
            self._count_posts(existing.owner_id, -1)

    def _count_posts(self, owner_id: str, delta: int) -> None:
        if self._aggregates is None:
            return
        self._aggregates.add_artist_posts(owner_id, delta)

    def _forget(self, post_id: int) -> None:
        self._cache.forget(post_id)
