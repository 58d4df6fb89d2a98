"""The reading service behind the stats routes: check who asks, parse the query, run it.

Each public method is one route's whole job, so ``app.py`` stays a thin adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.auth import Claims
from chalicelib.clock import Clock
from chalicelib.counts import SITE, Target
from chalicelib.errors import BadRequest, NotFound
from chalicelib.model import parse_post_id
from chalicelib.registry.posts import PostDirectory
from chalicelib.stats import access
from chalicelib.stats.csv import daily_csv
from chalicelib.stats.query import StatsQuery, parse_page, parse_range
from chalicelib.stats.runner import StatsRunner
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.aggregates.reading import PostLifetime

TOP_POSTS = 5
_ARTIST_MAX = 128

Params = Mapping[str, str] | None


def post_row(post: PostLifetime) -> dict[str, Any]:
    """One post's lifetime figures as of the last close, as a listing row."""
    return {
        "post_id": post.post_id,
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
    ) -> None:
        self._aggregates = aggregates
        self._posts = posts
        self._clock = clock
        self.runner = StatsRunner(aggregates, clock)

    # ---- posts ------------------------------------------------------------------------------

    def _readable_post(self, claims: Claims | None, post_id: int) -> None:
        """404 for an unknown post, 403 for another artist's (checked after the token)."""
        post = self._posts.get(post_id)
        if post is None:
            raise NotFound(f"post {post_id} is not registered", code="unknown_post")
        access.check_post_owner(access.reader(claims), post.owner_id)

    def post_stats(self, claims: Claims | None, post_text: str, params: Params) -> dict[str, Any]:
        access.reader(claims)
        post_id = parse_post_id(post_text)
        query = parse_range(params, self._clock.now())
        self._readable_post(claims, post_id)
        return {"post_id": post_id, **self.runner.stats(Target.post(post_id), query)}

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
        query = parse_range(params, self._clock.now())
        stats = self.runner.stats(Target.artist(artist_id), query)
        total_posts = self._aggregates.artist_post_count(artist_id)
        top, _ = self._aggregates.artist_posts(artist_id, TOP_POSTS, None)
        return {
            "artist_id": artist_id,
            **stats,
            "total_posts": total_posts,
            "top_posts": [post_row(post) for post in top],
        }

    def artist_posts(self, claims: Claims | None, artist_id: str, params: Params) -> dict[str, Any]:
        access.check_artist(claims, check_artist_id(artist_id))
        page = parse_page(params)
        posts, cursor = self._aggregates.artist_posts(artist_id, page.limit, page.cursor)
        return {
            "artist_id": artist_id,
            "sort": page.sort,
            "posts": [post_row(post) for post in posts],
            "next_cursor": cursor,
        }

    def site_stats(self, claims: Claims | None, params: Params) -> dict[str, Any]:
        access.check_site(claims)
        query: StatsQuery = parse_range(params, self._clock.now())
        return {"site": True, **self.runner.stats(SITE, query)}
