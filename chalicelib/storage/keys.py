"""Key formats and TTLs: the ONLY module that knows how items are addressed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from chalicelib.days import day_of as day_of  # TRANSITIONAL re-export

DAY_S = 86_400


def epoch_s(at: datetime) -> int:
    return int(at.timestamp())


# ---- events -------------------------------------------------------------------------------


def event_pk(post_id: int, day: str) -> str:
    return f"P#{post_id}#{day}"


def view_sk(visitor: str) -> str:
    """The per-day View dedup key: one item per (Visitor, Post, Day)."""
    return f"V#{visitor}"


def impression_sk(event_id: str) -> str:
    return f"I#{event_id}"


def parse_event_pk(pk: str) -> tuple[int, str]:
    """``P#{post}#{day}[#s{n}]`` -> (post_id, day)."""
    parts = pk.split("#")
    return int(parts[1]), parts[2]


def event_expires_at(day: str, ttl_days: int) -> int:
    """Raw events live ``ttl_days`` past the end of their Day, so a stalled close can catch up."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    return epoch_s(start + timedelta(days=1 + ttl_days))


# ---- registry -----------------------------------------------------------------------------

META_SK = "META"


def post_key(post_id: int) -> tuple[str, str]:
    return f"POST#{post_id}", META_SK


def player_key(player_key: str) -> tuple[str, str]:
    return f"PLAYER#{player_key}", META_SK


def rate_key(scope: str, subject: str) -> tuple[str, str]:
    """A rate-limit slot, e.g. scope ``imp`` (web Impressions) or ``player``."""
    return f"RATE#{scope}#{subject}", "RATE"


def once_key(scope: str, subject: str) -> tuple[str, str]:
    """A seen-once marker with a TTL, e.g. a player's (post, timestamp) for retransmissions."""
    return f"ONCE#{scope}#{subject}", "ONCE"


def watermark_key() -> tuple[str, str]:
    return "CLOSE", "WATERMARK"


# ---- aggregates ---------------------------------------------------------------------------


def post_day_key(post_id: int, day: str) -> tuple[str, str]:
    return f"P#{post_id}", f"D#{day}"


def artist_day_key(artist_id: str, day: str) -> tuple[str, str]:
    return f"A#{artist_id}", f"D#{day}"


def site_day_key(day: str) -> tuple[str, str]:
    return "SITE", f"D#{day}"


def drops_day_key(day: str) -> tuple[str, str]:
    return "DROPS", f"D#{day}"


def last_player_report_key() -> tuple[str, str]:
    """The last player report some container saw (operators check a bridge with it)."""
    return "DROPS", "LAST#player"


TOTAL_SK = "TOTAL"


# ---- aggregates, as the stats readers address them -----------------------------------------

SITE_AGGREGATE_PK = "SITE"


def post_aggregate_pk(post_id: int) -> str:
    return f"P#{post_id}"


def artist_aggregate_pk(artist_id: str) -> str:
    return f"A#{artist_id}"


def post_of_aggregate_pk(pk: str) -> int:
    """``P#{post}`` -> the post id."""
    return int(pk.split("#", 1)[1])


def artist_posts_key(artist_id: str) -> tuple[str, str]:
    """The artist's registered-post counter (kept by the post registry, not by the close)."""
    return artist_aggregate_pk(artist_id), "POSTS"


def series_sk(chunk_start: str) -> str:
    """A series chunk: the small per-Day figures of 8 aligned closed Days (storage/aggregates/closed.py)."""
    return f"S#{chunk_start}"


def piece_sk(level: int, start: str) -> str:
    """A piece: breakdowns and sketches of one closed Day (level 0) or of 2**level Days."""
    return f"B{level}#{start}"


def day_of_aggregate_sk(sk: str) -> str:
    """``D#{day}`` (or ``S#{day}``, ``B0#{day}``) -> the Day."""
    return sk.split("#", 1)[1]


# ---- aggregates, as the rollup writes them -------------------------------------------------


def day_sk(day: str) -> str:
    return f"D#{day}"


def marker_pk(day: str) -> str:
    """The partition of a Day's "post active on this Day" markers (read by the close)."""
    return f"DAY#{day}"


def marker_key(day: str, post_id: int) -> tuple[str, str]:
    return marker_pk(day), f"P#{post_id}"


def post_of_marker_sk(sk: str) -> int:
    return int(sk.split("#", 1)[1])


# A post's entry in the by_views index (gpk, v): tiny, so moving it costs 1 WRU, and moved
# by the close only (not by every live batch, which would rewrite the index each time).
RANK_SK = "RANK"


def pump_state_key() -> tuple[str, str]:
    """Where the stream handler notes the newest record it processed (health, freshness)."""
    return "PUMP", "STATE"
