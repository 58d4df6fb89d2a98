"""Demo data that looks like Makapix: a few artists and their titled posts with pixel art
(served by the local API at ``/demo-art/{n}.png``), a few frames (players), and a month of
looks recorded through the real recorders with a moving clock: web looks through the web
recorder, frame reports through the ``player_views`` handler the MQTT bridge invokes (rule
events built by the rule itself), so the dashboard's frames, channels and play order have
something to show."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.auth import Claims
from chalicelib.clock import FixedClock
from chalicelib.errors import RateLimited
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.ingest.web import WebHit
from chalicelib.wiring import Services

DEMO_ARTISTS = ("artist-1", "artist-2", "artist-3")
DEMO_POSTS = 12
DEMO_TITLES = (
    "Moonlit Castle", "Slime Party", "Retro Rocket", "Tiny Dragon", "Mushroom Forest",
    "Sunset Bay", "Knight's Rest", "Cherry Blossom", "Robot Friend", "Lava Cave",
    "Ghost Town", "Pixel Cat",
)
# Frames owned by collectors (never by the artists: an owner's own frame is not counted).
DEMO_PLAYERS = (
    ("collector-1", "BR", "America/Sao_Paulo", "Living room p3a"),
    ("collector-2", "JP", "Asia/Tokyo", "Studio frame"),
    ("collector-3", "DE", "Europe/Berlin", "Hallway p3a"),
    ("collector-4", "US", "America/New_York", "Desk frame"),
)
# What a frame is playing: channel tokens as p3a sends them, and the contexts they carry.
FRAME_CHANNELS = ("all", "promoted", "reactions", "by_user", "hashtag", "named", "pinned")
SQID_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

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


def demo_sqid(post_id: int) -> str:
    """A Makapix-like public id for a demo post (the same every run)."""
    rng = random.Random(f"sqid-{post_id}")
    return "".join(rng.choice(SQID_ALPHABET) for _ in range(6))


def demo_player_key(n: int) -> str:
    """The demo frame ``n``'s key (a UUID, the same every run)."""
    return str(uuid.UUID(int=random.Random(f"player-{n}").getrandbits(128), version=4))


def register_demo(services: Services, art_base: str | None = None) -> list[int]:
    """The demo posts (titled, with a sqid, and their art when ``art_base``, the origin
    serving ``/demo-art/``, is given) and the demo frames. Returns the post ids."""
    posts = list(range(1, DEMO_POSTS + 1))
    for post_id in posts:
        record, _ = services.posts.register(
            post_id,
            DEMO_ARTISTS[post_id % len(DEMO_ARTISTS)],
            sqid=demo_sqid(post_id),
            title=DEMO_TITLES[(post_id - 1) % len(DEMO_TITLES)],
        )
        if art_base:
            # The local stack serves its art over plain http, which the registry's API
            # refuses (art_url is https only): the demo writes it into the registry itself.
            art_url = f"{art_base.rstrip('/')}/demo-art/{post_id}.png"
            services.registry.put_post(replace(record, art_url=art_url))
    for n, (owner, country, timezone, name) in enumerate(DEMO_PLAYERS, 1):
        services.players.register(demo_player_key(n), owner, country, timezone, name=name)
    return posts


def frame_report(
    rng: random.Random, player_key: str, post_id: int, at: datetime
) -> tuple[str, bytes]:
    """One firmware-shaped report of a demo frame (topic, payload): a View when the frame's
    owner picked the artwork, else an Impression of channel playback."""
    from vtsops.player_sim import firmware_view

    roll = rng.random()
    if roll < 0.3:
        intent, channel = "artwork", "artwork"
    elif roll < 0.55:
        intent, channel = "intentional", rng.choice(FRAME_CHANNELS)
    else:
        intent, channel = "channel", rng.choice(FRAME_CHANNELS)
    payload = firmware_view(
        post_id=post_id,
        timestamp=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        intent=intent,
        play_order=rng.choice((0, 1, 1, 2)),
        channel=channel,
        player_key=player_key,
        channel_user_sqid=demo_sqid(rng.randrange(1, 40)) if channel in ("by_user", "reactions") else None,
        channel_hashtag=rng.choice(("pixelart", "gameboy", "isometric")) if channel == "hashtag" else None,
    )
    return f"makapix/player/{player_key}/view", payload


def seed_demo(
    services: Services,
    *,
    days: int = 30,
    looks: int = 2000,
    frame_reports: int | None = None,
    art_base: str | None = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    rng: random.Random | None = None,
) -> dict[str, int]:
    """Register the demo posts and frames, then record ``looks`` looks spread over ``days``:
    web looks, and ``frame_reports`` frame reports among them (a tenth by default).
    ``progress`` gets the number of looks done."""
    rng = rng or random.Random(42)
    now = now or datetime.now(UTC)
    clock = services.clock
    if not isinstance(clock, FixedClock):
        raise TypeError("seed_demo needs services built with a FixedClock")
    reports = looks // 10 if frame_reports is None else min(frame_reports, looks)
    posts = register_demo(services, art_base)
    recorder = services.web_recorder
    weights = [1 / rank for rank in range(1, len(posts) + 1)]  # Zipf-like popularity
    start = now - timedelta(days=days - 1)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    # A minute's room at the end: frames reporting live right after the seed are not held
    # to their rate by a seeded report.
    span_s = max(1.0, (now - start).total_seconds() - 60)
    outcomes = {"counted": 0, "other": 0, "frame_views": 0, "frame_impressions": 0}
    times = sorted(rng.uniform(0, span_s) for _ in range(looks))
    frames = set(rng.sample(range(looks), reports))
    from iot_rules import player_views_rule

    rule = player_views_rule()
    keys = [demo_player_key(n) for n in range(1, len(DEMO_PLAYERS) + 1)]
    for n, offset in enumerate(times, 1):
        clock.at = start + timedelta(seconds=offset)
        post_id = rng.choices(posts, weights)[0]
        if n - 1 in frames:
            key = rng.choice(keys)
            topic, payload = frame_report(rng, key, post_id, clock.at)
            # What the IoT rule hands the player_views Lambda (the bridge does the same).
            _, event = rule.apply(topic, payload, f"p3a-{key}", int(clock.at.timestamp() * 1000))
            result = services.player_views.record(event)
            reason = str(result["outcome"])
            outcomes["counted" if result["counted"] else "other"] += 1
            if reason in ("counted", "impression"):
                outcomes["frame_views" if reason == "counted" else "frame_impressions"] += 1
            if progress:
                progress(n)
            continue
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
