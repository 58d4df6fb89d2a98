"""Hot posts: a post looked at faster than one partition key takes writes (~1,000 write
units a second) gets write shards (docs/adr/0016-write-shards.md).

The stream handler hands each batch's looks to ``HotPosts.observe``, which

* notes the write shards the looks were stored under, per Day (``Aggregates.mark_shards``):
  the close reads those keys besides the Day's base key, and only for those posts. Each
  (Day, post, shard) once per container. This comes from the stored keys, so it also covers
  looks a recorder put on a shard after a throttled write (chalicelib/views.py);
* measures each post's rate in the batch (``batch_rates``) and marks a post hot in the
  registry (``Registry.mark_hot``) when it reaches ``looks_per_s``: its looks go to
  ``shards`` write shards until the end of the Day after the Day of its newest look. Until
  a Day boundary, so a post changes keys at most once within a Day (not hot -> hot): every
  change can store a returning Visitor's View twice, which the live counters count and the
  close does not. A post still that busy the next Day is marked again then, for one more.

Recorders learn a mark when their post cache reloads the post (``post_cache_s``), so the
threshold must leave room for a post's rate to grow during that time (docs/adr/0016).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from chalicelib.clock import Clock
from chalicelib.days import day_end, day_of, next_day
from chalicelib.errors import StorageUnavailable
from chalicelib.model import HotMark, ViewEvent
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.ports import Registry

logger = logging.getLogger("vts.rollup")

# A batch spanning less than this is measured over this: a handful of looks within a few
# milliseconds is no rate.
MIN_SPAN_S = 1.0
# What one container remembers having written (markers, marks): forgetting costs a rewrite.
_NOTED_MAX = 100_000


def batch_rates(events: Sequence[ViewEvent]) -> dict[int, float]:
    """Looks per second of each post in one stream batch: its looks over the time the whole
    batch spans, by the looks' own times (when the recorders stored them; at least
    ``MIN_SPAN_S``). Not by when the batch arrives: a backlog delivered at once (the handler
    was behind) spans the time it was written in, so it is measured at the rate it was
    written at. A batch holds one stream shard's records, so a post spread over write shards
    that land in several stream shards is seen in part: it is marked hot all the same while
    any part passes the threshold, and a mark lasts to the end of the next Day anyway."""
    if not events:
        return {}
    times = [event.occurred_at for event in events]
    span_s = max(MIN_SPAN_S, (max(times) - min(times)).total_seconds())
    counts = Counter(event.post_id for event in events)
    return {post_id: n / span_s for post_id, n in counts.items()}


def newest_per_post(events: Sequence[ViewEvent]) -> dict[int, ViewEvent]:
    """Each post's newest look among ``events`` (of looks at the same instant, the later in
    the batch)."""
    newest: dict[int, ViewEvent] = {}
    for event in events:
        held = newest.get(event.post_id)
        if held is None or event.occurred_at >= held.occurred_at:
            newest[event.post_id] = event
    return newest


class HotPosts:
    """The stream handler's side of write shards (module docstring). Without a registry, or
    with ``looks_per_s`` or ``shards`` 0, it only notes the shards looks used."""

    def __init__(
        self,
        aggregates: Aggregates,
        clock: Clock,
        *,
        ttl_days: int,
        registry: Registry | None = None,
        looks_per_s: int = 0,
        shards: int = 0,
    ) -> None:
        self._aggregates = aggregates
        self._clock = clock
        self._ttl_days = ttl_days
        self._registry = registry if looks_per_s and shards else None
        self._looks_per_s = looks_per_s
        self._shards = shards
        self._noted: set[tuple[str, int, int]] = set()
        self._marked: dict[int, datetime] = {}

    def observe(self, events: Sequence[ViewEvent]) -> None:
        """Note the batch's write shards, then mark the posts it shows hot."""
        self._note_shards(events)
        if self._registry is not None:
            self._mark_hot(self._registry, events)

    def _note_shards(self, events: Sequence[ViewEvent]) -> None:
        used = {(e.day, e.post_id, e.shard) for e in events if e.shard is not None}
        new = sorted(used - self._noted)
        if not new:
            return
        # Written before the batch is done: a failure retries the batch, markers and all.
        self._aggregates.mark_shards(new, self._ttl_days)
        if len(self._noted) + len(new) > _NOTED_MAX:
            self._noted.clear()
        self._noted.update(new)

    def _mark_hot(self, registry: Registry, events: Sequence[ViewEvent]) -> None:
        now = self._clock.now()
        newest = newest_per_post(events)
        for post_id, rate in sorted(batch_rates(events).items()):
            if rate < self._looks_per_s:
                continue
            until = day_end(next_day(day_of(newest[post_id].occurred_at)))
            held = self._marked.get(post_id)
            if until <= now or (held is not None and held >= until):
                continue  # a backlog of a Day long past, or marked already
            try:
                registry.mark_hot(post_id, HotMark(self._shards, until))
            except StorageUnavailable:
                # The mark only spares the recorders their fallback: the next batch retries.
                logger.warning("hot: post %s could not be marked hot now", post_id)
                continue
            logger.info(
                "hot: post %s at %.0f looks/s: %d write shards until %s",
                post_id,
                rate,
                self._shards,
                until.isoformat(),
            )
            if len(self._marked) >= _NOTED_MAX:
                self._marked.clear()
            self._marked[post_id] = until
