"""The public counter: lifetime Views from ``TOTAL`` (closed Days) and the live Days after it."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest

from chalicelib.clock import FixedClock
from chalicelib.errors import NotFound
from chalicelib.registry.posts import PostDirectory
from chalicelib.stats.service import StatsService
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore
from chalicelib.storage.memory import MemoryRegistry
from tests.statsdata import Look, aggregate_items, random_looks

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
POSTS = {1: "artist-a", 2: "artist-a", 3: "artist-b"}


def service(looks: list[Look], closed_days: set[str]) -> StatsService:
    store = MemoryAggregateStore()
    store.put_items(aggregate_items(looks, closed_days))
    aggregates = Aggregates(store)
    clock = FixedClock(NOW)
    posts = PostDirectory(MemoryRegistry(), clock, 60, aggregates=aggregates)
    for post_id, owner in POSTS.items():
        posts.register(post_id, owner)
    return StatsService(aggregates, posts, clock)


@pytest.fixture(scope="module")
def looks() -> list[Look]:
    return random_looks(random.Random(5), n=2000, first=date(2026, 11, 1), days=24, posts=POSTS)


def views(looks: list[Look], post: int) -> int:
    return sum(1 for look in looks if look.post == post and look.view)


@pytest.mark.parametrize("last_closed", ["2026-10-31", "2026-11-10", "2026-11-21", "2026-11-24"])
def test_the_counter_adds_live_days_after_total_once(looks: list[Look], last_closed: str) -> None:
    # Live D# items of closed Days are still there (until their TTL): never added again.
    stats = service(looks, {look.day for look in looks if look.day <= last_closed})
    for post in POSTS:
        assert stats.counter(str(post)) == {"post_id": post, "views": views(looks, post)}


def test_a_post_never_looked_at_counts_zero_and_an_unknown_one_is_404(looks: list[Look]) -> None:
    stats = service([look for look in looks if look.post != 3], {"2026-11-01"})
    assert stats.counter("3") == {"post_id": 3, "views": 0}
    with pytest.raises(NotFound):
        stats.counter("404")
