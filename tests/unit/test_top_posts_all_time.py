"""Top posts and the posts listing are all-time figures: the last close plus the open Days,
never below a period's figure and equal to the public counter; with each post's title, art
and page from the registry (one batched registry read for the page)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pytest

from chalicelib.auth import Claims
from chalicelib.clock import FixedClock
from chalicelib.registry.posts import PostDirectory
from chalicelib.stats.service import StatsService
from chalicelib.storage.aggregates import Aggregates, layout
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore
from chalicelib.storage.memory import MemoryRegistry
from chalicelib.storage.tables import RANK_ROW_ATTRIBUTES
from tests.statsdata import Look, aggregate_items, random_looks

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
POSTS = {1: "artist-a", 2: "artist-a", 3: "artist-a", 4: "artist-b"}
ADMIN = Claims(sub="ops", role="admin")


class CountingStore(MemoryAggregateStore):
    """The in-memory aggregates, counting the calls a request makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get_items(self, keys_: Any) -> dict[Any, dict[str, Any]]:
        self.calls.append("batch")
        return super().get_items(keys_)

    def query_range(self, pk: str, first_sk: str, last_sk: str) -> list[dict[str, Any]]:
        self.calls.append("query")
        return super().query_range(pk, first_sk, last_sk)

    def query_artist_posts(self, artist_id: str, limit: int, cursor: str | None) -> Any:
        self.calls.append("index")
        return super().query_artist_posts(artist_id, limit, cursor)


class CountingRegistry(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def get_posts(self, post_ids: Any) -> Any:
        self.batches += 1
        return super().get_posts(post_ids)


def ranked(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each post's RANK as the close and the live path write it: the listing row of its
    TOTAL (``RANK_ROW_ATTRIBUTES``), or ``v`` 0 before its first close."""
    totals = {item["pk"]: item for item in items if item["sk"] == layout.TOTAL_SK}
    out = [item for item in items if item["sk"] != layout.RANK_SK]
    for post, artist in POSTS.items():
        pk = f"P#{post}"
        total = totals.get(pk, {})
        rank = {"pk": pk, "sk": layout.RANK_SK, "gpk": f"A#{artist}", "v": total.get("v", 0)}
        rank.update({k: total[k] for k in RANK_ROW_ATTRIBUTES if k in total})
        out.append(rank)
    return out


def service(
    looks: list[Look], closed_days: set[str], watermark: str | None
) -> tuple[StatsService, CountingStore, CountingRegistry]:
    store = CountingStore()
    store.put_items(ranked(aggregate_items(looks, closed_days)))
    if watermark:
        store.advance_watermark(watermark)
    aggregates = Aggregates(store)
    clock = FixedClock(NOW)
    registry = CountingRegistry()
    posts = PostDirectory(registry, clock, 60, aggregates=aggregates)
    for post_id, owner in POSTS.items():
        posts.register(post_id, owner, sqid=f"sq{post_id}", title=f"Art {post_id}",
                       art_url=f"https://vault.makapix.club/{post_id}.png")
    store.calls.clear()
    registry.batches = 0
    return StatsService(aggregates, posts, clock, site_url="https://pixels.test"), store, registry


@pytest.fixture(scope="module")
def looks() -> list[Look]:
    # 24 Days up to today (2026-11-24), today included.
    return random_looks(random.Random(11), n=3000, first=date(2026, 11, 1), days=24, posts=POSTS)


def views(looks: list[Look], post: int) -> int:
    return sum(1 for look in looks if look.post == post and look.view)


def impressions(looks: list[Look], post: int) -> int:
    return sum(1 for look in looks if look.post == post and not look.view)


def days_through(looks: list[Look], last: str) -> set[str]:
    return {look.day for look in looks if look.day <= last}


@pytest.mark.parametrize(
    ("closed_through", "watermark"),
    [
        ("2026-11-23", "2026-11-23"),  # the close has run: only today is open
        ("2026-11-22", "2026-11-22"),  # yesterday not closed yet
        ("2026-11-23", "2026-11-22"),  # the close is taking yesterday: TOTAL has it already
        ("2026-11-15", "2026-11-15"),  # a stalled close
        ("2026-10-31", None),  # no close ever ran
    ],
)
def test_rows_are_all_time_whatever_the_close_has_done(
    looks: list[Look], closed_through: str, watermark: str | None
) -> None:
    stats, _, _ = service(looks, days_through(looks, closed_through), watermark)
    page = stats.artist_posts(ADMIN, "artist-a", {"limit": "10"})
    rows = {row["post_id"]: row for row in page["posts"]}
    assert set(rows) == {1, 2, 3}
    for post, row in rows.items():
        assert row["views"] == views(looks, post) == stats.counter(str(post))["views"]
        assert row["impressions"] == impressions(looks, post)
        last = max(look.at for look in looks if look.post == post and look.view)
        assert row["last_view_at"] == last.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    top = stats.artist_stats(ADMIN, "artist-a", {})["top_posts"]
    assert [row["views"] for row in top] == [rows[row["post_id"]]["views"] for row in top]


def test_all_time_is_never_below_the_period_with_views_today_not_yet_closed(
    looks: list[Look],
) -> None:
    stats, _, _ = service(looks, days_through(looks, "2026-11-23"), "2026-11-23")
    period = {"from": "2026-10-26", "to": "2026-11-24"}
    for row in stats.artist_stats(ADMIN, "artist-a", period)["top_posts"]:
        post = stats.post_stats(ADMIN, str(row["post_id"]), period)
        assert post["views"] > 0 and row["views"] >= post["views"]


def test_a_page_is_a_fixed_number_of_reads_whatever_its_posts(looks: list[Look]) -> None:
    stats, store, registry = service(looks, days_through(looks, "2026-11-23"), "2026-11-23")
    stats.artist_posts(ADMIN, "artist-a", {"limit": "10"})
    # The index page, then one batch read: the listed posts' items of today and the watermark.
    assert store.calls == ["index", "batch"]
    assert registry.batches == 1
    store.calls.clear()
    stats.artist_stats(ADMIN, "artist-a", {})
    # top_posts reuses the watermark the stats read: its index page and one batch read.
    assert store.calls[-2:] == ["index", "batch"]


def test_rows_and_post_stats_carry_title_art_and_page(looks: list[Look]) -> None:
    stats, _, _ = service(looks, days_through(looks, "2026-11-23"), "2026-11-23")
    row = stats.artist_posts(ADMIN, "artist-a", {"limit": "1"})["posts"][0]
    post = row["post_id"]
    assert row["title"] == f"Art {post}"
    assert row["art_url"] == f"https://vault.makapix.club/{post}.png"
    assert row["sqid"] == f"sq{post}"
    assert row["url"] == f"https://pixels.test/p/sq{post}"
    answer = stats.post_stats(ADMIN, "4", {})
    assert answer["title"] == "Art 4" and answer["url"] == "https://pixels.test/p/sq4"


def test_a_post_without_details_has_nulls_and_a_deleted_one_no_page(looks: list[Look]) -> None:
    stats, _, _ = service(looks, days_through(looks, "2026-11-23"), "2026-11-23")
    posts = stats._posts
    posts.register(1, "artist-a")
    posts.register(2, "artist-a", sqid="sq2", title="Gone", deleted=True)
    rows = {r["post_id"]: r for r in stats.artist_posts(ADMIN, "artist-a", {})["posts"]}
    assert {k: rows[1][k] for k in ("title", "art_url", "sqid", "url")} == dict.fromkeys(
        ("title", "art_url", "sqid", "url")
    )
    assert rows[2]["title"] == "Gone" and rows[2]["sqid"] == "sq2" and rows[2]["url"] is None
