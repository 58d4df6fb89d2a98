"""The stats routes through the Chalice app, over aggregate items in moto: who may read
what, every 4xx, the public counter, the CSV, artist totals and the posts listing."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.wiring import Services, dynamodb_services, use
from tests.conftest import auth, fresh_tables
from tests.statsdata import aggregate_items, random_looks, truth

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
POSTS = {1: "artist-1", 2: "artist-1", 3: "artist-2"}
RANGE = "from=2026-11-01&to=2026-11-20"


def build(settings: Settings) -> Services:
    """The app's services over moto, with a fixed clock; posts registered, a month of
    looks written as closed Days through the 20th and live ones after."""
    services = dynamodb_services(settings, clock=FixedClock(NOW))
    for post_id, owner in POSTS.items():
        services.posts.register(post_id, owner)
    looks = random_looks(random.Random(3), n=600, first=date(2026, 11, 1), days=24, posts=POSTS)
    closed = {look.day for look in looks if look.day <= "2026-11-20"}
    services.aggregate_items.put_items(aggregate_items(looks, closed))
    services.aggregate_items.advance_watermark("2026-11-20")
    services.looks = looks  # type: ignore[attr-defined]
    return services


@pytest.fixture(scope="module")
def shared(moto_endpoint: str) -> Services:
    """One world for the read-only tests of this module (tables take seconds to make)."""
    with fresh_tables(moto_endpoint, "s", "stats-test") as settings:
        return build(settings)


@pytest.fixture(scope="module")
def api(shared: Services) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="dev") as client:
        yield client


@pytest.fixture
def services(shared: Services) -> Iterator[Services]:
    with use(shared):
        yield shared


@pytest.fixture
def own_world(aws_env: Settings) -> Iterator[Services]:
    """A world of its own, for tests that change the registry."""
    with use(build(aws_env)) as services:
        yield services


@pytest.fixture
def settings(services: Services) -> Settings:
    return services.settings


def get(api: Any, path: str, headers: dict[str, str] | None = None) -> Any:
    return api.http.get(path, headers=headers or {})


def body(response: Any) -> Any:
    return json.loads(response.body)


def code(response: Any) -> str:
    return str(body(response)["error"]["code"])


def as_(settings: Settings, sub: str, role: str) -> dict[str, str]:
    return auth(settings, sub, role)


# ---- who may read what ----------------------------------------------------------------------


READ_PATHS = [
    f"/v1/posts/1/stats?{RANGE}",
    f"/v1/posts/1/stats.csv?{RANGE}",
    f"/v1/artists/artist-1/stats?{RANGE}",
    "/v1/artists/artist-1/posts",
    f"/v1/site/stats?{RANGE}",
]


@pytest.mark.parametrize("path", READ_PATHS)
def test_no_token_is_401_and_a_bad_one_too(
    api: Any, services: Services, settings: Settings, path: str
) -> None:
    assert get(api, path).status_code == 401
    assert code(get(api, path)) == "missing_token"
    bad = get(api, path, {"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401 and code(bad) == "invalid_token"
    other_secret = Settings(jwt_secret="another-secret-another-secret-0123")
    forged = get(api, path, auth(other_secret, "artist-1", "admin"))
    assert forged.status_code == 401


@pytest.mark.parametrize("path", READ_PATHS)
def test_admins_and_the_service_read_everything(
    api: Any, services: Services, settings: Settings, path: str
) -> None:
    for role in ("admin", "service"):
        response = get(api, path, as_(settings, "someone", role))
        assert response.status_code == 200, (role, response.body)
        assert response.headers["Cache-Control"] == "private, no-store"


def test_an_artist_reads_only_own_posts_and_own_artist_stats(
    api: Any, services: Services, settings: Settings
) -> None:
    mine = as_(settings, "artist-1", "artist")
    assert get(api, f"/v1/posts/1/stats?{RANGE}", mine).status_code == 200
    assert get(api, f"/v1/posts/2/stats.csv?{RANGE}", mine).status_code == 200
    assert get(api, f"/v1/artists/artist-1/stats?{RANGE}", mine).status_code == 200
    assert get(api, "/v1/artists/artist-1/posts", mine).status_code == 200
    for path, reason in (
        (f"/v1/posts/3/stats?{RANGE}", "not_your_post"),
        (f"/v1/posts/3/stats.csv?{RANGE}", "not_your_post"),
        (f"/v1/artists/artist-2/stats?{RANGE}", "not_your_artist"),
        ("/v1/artists/artist-2/posts", "not_your_artist"),
        (f"/v1/site/stats?{RANGE}", "forbidden"),
    ):
        response = get(api, path, mine)
        assert response.status_code == 403 and code(response) == reason, path


def test_a_viewer_token_reads_no_stats(api: Any, services: Services, settings: Settings) -> None:
    viewer = as_(settings, "artist-1", "viewer")
    for path in READ_PATHS:
        assert get(api, path, viewer).status_code == 403


def test_a_re_owned_post_changes_who_may_read_it(api: Any, own_world: Services) -> None:
    settings = own_world.settings
    own_world.posts.register(3, "artist-1")
    assert (
        get(api, f"/v1/posts/3/stats?{RANGE}", as_(settings, "artist-1", "artist")).status_code
        == 200
    )
    assert (
        get(api, f"/v1/posts/3/stats?{RANGE}", as_(settings, "artist-2", "artist")).status_code
        == 403
    )


# ---- every 4xx ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/v1/posts/abc/stats", 400, "invalid_post_id"),
        ("/v1/posts/0/stats", 400, "invalid_post_id"),
        ("/v1/posts/99/stats", 404, "unknown_post"),
        ("/v1/posts/99/stats.csv", 404, "unknown_post"),
        ("/v1/posts/1/stats?from=2026-11-31", 400, "invalid_date"),
        ("/v1/posts/1/stats?to=20261101", 400, "invalid_date"),
        ("/v1/posts/1/stats?from=2026-11-10&to=2026-11-01", 400, "invalid_range"),
        ("/v1/posts/1/stats?from=2025-01-01&to=2026-11-01", 400, "range_too_long"),
        ("/v1/posts/1/stats?tz=Moon/Base", 400, "unknown_timezone"),
        ("/v1/posts/1/stats?tz=", 200, None),
        ("/v1/posts/1/stats?form=2026-11-01", 400, "unknown_parameter"),
        ("/v1/posts/1/stats.csv?from=x", 400, "invalid_date"),
        ("/v1/artists/artist-1/stats?from=2026-11-10&to=2026-11-01", 400, "invalid_range"),
        ("/v1/artists/artist-1/posts?limit=0", 400, "invalid_limit"),
        ("/v1/artists/artist-1/posts?limit=1000", 400, "invalid_limit"),
        ("/v1/artists/artist-1/posts?sort=date", 400, "unsupported_sort"),
        ("/v1/artists/artist-1/posts?cursor=%25%25", 400, "invalid_cursor"),
        ("/v1/artists/artist-1/posts?cursor=eyJub3QiOiJvdXJzIn0", 400, "invalid_cursor"),
        ("/v1/site/stats?tz=Nowhere", 400, "unknown_timezone"),
    ],
)
def test_bad_requests_answer_the_error_json(
    api: Any, services: Services, settings: Settings, path: str, status: int, error: str | None
) -> None:
    response = get(api, path, as_(settings, "ops", "admin"))
    assert response.status_code == status, response.body
    if error is not None:
        assert code(response) == error
        assert set(body(response)["error"]) == {"code", "message"}


def test_a_cursor_of_another_artists_listing_is_refused(
    api: Any, services: Services, settings: Settings
) -> None:
    admin = as_(settings, "ops", "admin")
    page = body(get(api, "/v1/artists/artist-1/posts?limit=1", admin))
    assert page["next_cursor"]
    other = get(api, f"/v1/artists/artist-2/posts?cursor={page['next_cursor']}", admin)
    assert other.status_code == 400 and code(other) == "invalid_cursor"


# ---- answers --------------------------------------------------------------------------------


def test_post_stats_match_the_truth_on_closed_days(
    api: Any, services: Services, settings: Settings
) -> None:
    stats = body(get(api, f"/v1/posts/1/stats?{RANGE}", as_(settings, "artist-1", "artist")))
    looks = [look for look in services.looks if look.post == 1]  # type: ignore[attr-defined]
    want = truth(looks, UTC, date(2026, 11, 1), date(2026, 11, 20))
    assert (stats["post_id"], stats["from"], stats["to"], stats["tz"]) == (
        1,
        "2026-11-01",
        "2026-11-20",
        "UTC",
    )
    assert (stats["views"], stats["impressions"]) == (want["views"], want["impressions"])
    assert stats["by_hour_local"] == want["by_hour_local"]
    assert stats["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.03)
    assert stats["authenticated"]["views"] == want["authenticated_views"]
    assert [row["views"] for row in stats["daily"]] == [r["views"] for r in want["daily"].values()]
    # Every Day in range is closed: final up to the end of the watermark Day.
    assert stats["fresh_as_of"] == "2026-11-21T00:00:00.000Z"
    assert stats["computed_at"] == "2026-11-24T10:00:00.000Z"


def test_the_csv_has_one_row_per_local_date(
    api: Any, services: Services, settings: Settings
) -> None:
    response = get(
        api,
        "/v1/posts/1/stats.csv?from=2026-11-15&to=2026-11-24&tz=Europe/Lisbon",
        as_(settings, "artist-1", "artist"),
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="post-1-2026-11-15-2026-11-24.csv"' in response.headers["Content-Disposition"]
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["date"] for row in rows][:2] == ["2026-11-15", "2026-11-16"] and len(rows) == 10
    stats = body(
        get(
            api,
            "/v1/posts/1/stats?from=2026-11-15&to=2026-11-24&tz=Europe/Lisbon",
            as_(settings, "artist-1", "artist"),
        )
    )
    assert [int(row["views"]) for row in rows] == [d["views"] for d in stats["daily"]]


def test_the_public_counter_is_cacheable_and_open(api: Any, services: Services) -> None:
    response = get(api, "/v1/posts/1/counter")
    looks = [look for look in services.looks if look.post == 1 and look.view]  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert body(response) == {"post_id": 1, "views": len(looks)}
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    missing = get(api, "/v1/posts/404/counter")
    assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == "*"
    assert get(api, "/v1/posts/x/counter").status_code == 400


def test_artist_stats_count_posts_without_listing_them(api: Any, own_world: Services) -> None:
    services, settings = own_world, own_world.settings
    artist = as_(settings, "artist-1", "artist")
    stats = body(get(api, f"/v1/artists/artist-1/stats?{RANGE}", artist))
    assert stats["artist_id"] == "artist-1" and stats["total_posts"] == 2
    # Ranked by lifetime Views as of the last close (the 20th).
    assert [row["post_id"] for row in stats["top_posts"]] == sorted(
        (1, 2),
        key=lambda p: (
            -sum(
                1
                for look in services.looks  # type: ignore[attr-defined]
                if look.post == p and look.view and look.day <= "2026-11-20"
            )
        ),
    )
    services.posts.register(7, "artist-1")
    services.posts.register(3, "artist-1")  # re-owned from artist-2
    services.posts.delete(2)
    again = body(get(api, f"/v1/artists/artist-1/stats?{RANGE}", artist))
    assert again["total_posts"] == 3
    other = body(get(api, f"/v1/artists/artist-2/stats?{RANGE}", as_(settings, "x", "admin")))
    assert other["total_posts"] == 0


def test_the_posts_listing_walks_every_post_by_views(
    api: Any, services: Services, settings: Settings
) -> None:
    admin = as_(settings, "ops", "admin")
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = body(get(api, f"/v1/artists/artist-1/posts?limit=1{cursor}", admin))
        seen += page["posts"]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(row["post_id"] for row in seen) == [1, 2]
    assert [row["views"] for row in seen] == sorted((row["views"] for row in seen), reverse=True)


def test_site_stats_add_up_every_post(api: Any, services: Services, settings: Settings) -> None:
    stats = body(get(api, f"/v1/site/stats?{RANGE}", as_(settings, "ops", "admin")))
    want = truth(services.looks, UTC, date(2026, 11, 1), date(2026, 11, 20))  # type: ignore[attr-defined]
    assert (stats["views"], stats["impressions"]) == (want["views"], want["impressions"])
    assert stats["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.03)


def test_post_stats_across_the_watermark_in_a_zone_match_the_truth(
    api: Any, services: Services, settings: Settings
) -> None:
    """Closed Days from series chunks and pieces, open ones from their live items, the
    window cut at Sao Paulo's midnights: every count still equals the truth."""
    from zoneinfo import ZoneInfo

    path = "/v1/posts/1/stats?from=2026-11-10&to=2026-11-24&tz=America/Sao_Paulo"
    stats = body(get(api, path, as_(settings, "artist-1", "artist")))
    looks = [look for look in services.looks if look.post == 1]  # type: ignore[attr-defined]
    want = truth(looks, ZoneInfo("America/Sao_Paulo"), date(2026, 11, 10), date(2026, 11, 24))
    assert (stats["views"], stats["impressions"]) == (want["views"], want["impressions"])
    assert stats["by_hour_local"] == want["by_hour_local"]
    assert [row["views"] for row in stats["daily"]] == [r["views"] for r in want["daily"].values()]
    assert sum(stats["by_country"].values()) == stats["views"]
    assert stats["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.1)
    assert stats["fresh_as_of"] == stats["computed_at"]
