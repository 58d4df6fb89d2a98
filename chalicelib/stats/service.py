"""The reading service behind the stats routes: check who asks, parse the query, run it.

Each public method is one route's whole job, so ``app.py`` stays a thin adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from chalicelib.claims import Claims
from chalicelib.clock import Clock
from chalicelib.config import Settings
from chalicelib.counts import SITE, Target
from chalicelib.days import day_of
from chalicelib.errors import BadRequest, NotFound
from chalicelib.model import PostRecord, parse_post_id
from chalicelib.registry.posts import PostDirectory
from chalicelib.stats import access
from chalicelib.stats.csv import daily_csv
from chalicelib.stats.query import StatsQuery, parse_page, parse_range
from chalicelib.stats.runner import StatsRunner, build_stats
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.aggregates.reading import PostLifetime

TOP_POSTS = 5
_ARTIST_MAX = 128

Params = Mapping[str, str] | None


def post_links(record: PostRecord | None, site_url: str) -> dict[str, Any]:
    """What the registry knows of a post for people: its title, its artwork's URL, its
    Makapix sqid and the URL of its page on the site (``{site_url}/p/{sqid}``; none for a
    deleted post). Each is null when unknown."""
    sqid = record.sqid if record is not None else None
    page = None
    if sqid and record is not None and not record.deleted:
        page = f"{site_url.rstrip('/')}/p/{quote(sqid, safe='')}"
    return {
        "title": record.title if record is not None else None,
        "art_url": record.art_url if record is not None else None,
        "sqid": sqid,
        "url": page,
    }


def post_row(
    post: PostLifetime, record: PostRecord | None = None, site_url: str = Settings.site_url
) -> dict[str, Any]:
    """One post's all-time figures (the last close and the open Days), as a listing row,
    with its title, art and page from the registry."""
    return {
        "post_id": post.post_id,
        **post_links(record, site_url),
        "views": post.views,
        "impressions": post.impressions,
        "first_view_at": post.first_view_at,
        "last_view_at": post.last_view_at,
    }


def check_artist_id(artist_id: str) -> str:
    if not artist_id or len(artist_id) > _ARTIST_MAX:
        raise BadRequest(
            f"artist_id must be a non-empty string of at most {_ARTIST_MAX} characters",
            code="invalid_artist_id",
        )
    return artist_id


class StatsService:
    def __init__(
        self,
        aggregates: Aggregates,
        posts: PostDirectory,
        clock: Clock,
        site_url: str = Settings.site_url,
    ) -> None:
        self._aggregates = aggregates
        self._posts = posts
        self._clock = clock
        self._site_url = site_url
        self.runner = StatsRunner(aggregates, clock)

    def _rows(self, posts: Iterable[PostLifetime]) -> list[dict[str, Any]]:
        """Listing rows with the registry's details: one batched read (through the post
        cache) for the whole page, never one per post."""
        posts = list(posts)
        records = self._posts.get_many(post.post_id for post in posts) if posts else {}
        return [post_row(post, records.get(post.post_id), self._site_url) for post in posts]

    # ---- posts ------------------------------------------------------------------------------

    def _readable_post(self, claims: Claims | None, post_id: int) -> PostRecord:
        """404 for an unknown post, 403 for another artist's (checked after the token)."""
        post = self._posts.get(post_id)
        if post is None:
            raise NotFound(f"post {post_id} is not registered", code="unknown_post")
        access.check_post_owner(access.reader(claims), post.owner_id)
        return post

    def post_stats(self, claims: Claims | None, post_text: str, params: Params) -> dict[str, Any]:
        access.reader(claims)
        post_id = parse_post_id(post_text)
        query = parse_range(params, self._clock.now())
        record = self._readable_post(claims, post_id)
        return {
            "post_id": post_id,
            **post_links(record, self._site_url),
            **self.runner.stats(Target.post(post_id), query),
        }

    def post_csv(self, claims: Claims | None, post_text: str, params: Params) -> tuple[str, str]:
        """The daily series as CSV text, and a file name for it."""
        access.reader(claims)
        post_id = parse_post_id(post_text)
        query = parse_range(params, self._clock.now())
        self._readable_post(claims, post_id)
        daily = self.runner.daily(Target.post(post_id), query)
        name = f"post-{post_id}-{query.first.isoformat()}-{query.last.isoformat()}.csv"
        return daily_csv(daily["everyone"]["daily"], daily["signed_in"]["daily"]), name

    def counter(self, post_text: str) -> dict[str, Any]:
        """Public lifetime Views of a post: its closed Days and the live Days after them."""
        post_id = parse_post_id(post_text)
        if self._posts.get(post_id) is None:
            raise NotFound(f"post {post_id} is not registered", code="unknown_post")
        return {"post_id": post_id, "views": self._aggregates.lifetime_views(post_id)}

    # ---- artists and the site -----------------------------------------------------------

    def artist_stats(self, claims: Claims | None, artist_id: str, params: Params) -> dict[str, Any]:
        access.check_artist(claims, check_artist_id(artist_id))
        now = self._clock.now()
        query = parse_range(params, now)
        reading = self.runner.read(Target.artist(artist_id), query)
        stats = build_stats(query, reading, kind="artist", now=now)
        total_posts = self._aggregates.artist_post_count(artist_id)
        # The watermark just read tells which Days are open: not read a second time.
        top, _ = self._aggregates.artist_posts(
            artist_id, TOP_POSTS, None, today=day_of(now), freshness=reading.freshness
        )
        return {
            "artist_id": artist_id,
            **stats,
            "total_posts": total_posts,
            "top_posts": self._rows(top),
        }

    def artist_posts(self, claims: Claims | None, artist_id: str, params: Params) -> dict[str, Any]:
        access.check_artist(claims, check_artist_id(artist_id))
        page = parse_page(params)
        posts, cursor = self._aggregates.artist_posts(
            artist_id, page.limit, page.cursor, today=day_of(self._clock.now())
        )
        return {
            "artist_id": artist_id,
            "sort": page.sort,
            "posts": self._rows(posts),
            "next_cursor": cursor,
        }

    def site_stats(self, claims: Claims | None, params: Params) -> dict[str, Any]:
        access.check_site(claims)
        query: StatsQuery = parse_range(params, self._clock.now())
        return {"site": True, **self.runner.stats(SITE, query)}
