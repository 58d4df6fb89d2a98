"""Demo data: a few artists and posts, and a month of looks recorded through the real
recorder (with a moving clock), so the stack has something to show."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from chalicelib.auth import Claims
from chalicelib.clock import FixedClock
from chalicelib.errors import RateLimited
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.ingest.web import WebHit
from chalicelib.wiring import Services

DEMO_ARTISTS = ("artist-1", "artist-2", "artist-3")
DEMO_POSTS = 12

# Public addresses of well-known networks in several countries (the GeoIP DB decides).
DEMO_IPS = (
    "8.8.8.8",
    "4.2.2.2",
    "81.2.69.142",
    "200.160.2.3",
    "193.0.6.139",
    "133.242.0.1",
    "203.2.218.214",
    "77.88.8.8",
    "185.15.58.224",
    "101.101.101.101",
    "41.231.53.1",
    "180.76.76.76",
    "202.12.27.33",
    "62.4.0.1",
    "89.187.160.1",
    "5.6.7.8",
)
DEMO_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
CHANNELS = (None, None, "all", "promoted", "hashtag", "by_user")
REFERRERS = (
    None,
    None,
    "https://makapix.club/",
    "https://www.reddit.com/r/PixelArt/",
    "https://mastodon.social/@pixels",
    "https://news.ycombinator.com/",
)


def _demo_ip(rng: random.Random) -> str:
    prefix = rng.choice(DEMO_IPS).rsplit(".", 1)[0]
    return f"{prefix}.{rng.randrange(1, 255)}"


def seed_demo(
    services: Services,
    *,
    days: int = 30,
    looks: int = 2000,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    rng: random.Random | None = None,
) -> dict[str, int]:
    """Register the demo posts and record ``looks`` web looks spread over ``days``."""
    rng = rng or random.Random(42)
    now = now or datetime.now(UTC)
    clock = services.clock
    if not isinstance(clock, FixedClock):
        raise TypeError("seed_demo needs services built with a FixedClock")
    for post_id in range(1, DEMO_POSTS + 1):
        services.posts.register(post_id, DEMO_ARTISTS[post_id % len(DEMO_ARTISTS)])
    recorder = services.web_recorder
    weights = [1 / rank for rank in range(1, DEMO_POSTS + 1)]  # Zipf-like popularity
    start = now - timedelta(days=days - 1)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    span_s = max(1.0, (now - start).total_seconds() - 1)
    outcomes = {"counted": 0, "other": 0}
    times = sorted(rng.uniform(0, span_s) for _ in range(looks))
    for n, offset in enumerate(times, 1):
        clock.at = start + timedelta(seconds=offset)
        post_id = rng.choices(range(1, DEMO_POSTS + 1), weights)[0]
        signed_in = rng.random() < 0.2
        hit = WebHit(
            post_id=post_id,
            request=RecordViewRequest(
                intent="impression" if rng.random() < 0.25 else "view",
                source=rng.choice(("web", "web", "web", "widget", "api")),
                channel=rng.choice(CHANNELS),
                referrer=rng.choice(REFERRERS),
            ),
            user_agent=rng.choice(DEMO_UAS),
            referer_header=None,
            source_ip=_demo_ip(rng) if not signed_in else "127.0.0.1",
            viewer=Claims(sub=f"fan-{rng.randrange(40)}", role="viewer") if signed_in else None,
        )
        try:
            outcome = recorder.record(hit)
        except RateLimited:
            outcomes["other"] += 1
        else:
            outcomes["counted" if outcome.counted else "other"] += 1
        if progress:
            progress(n)
    services.drops.flush()
    return outcomes
