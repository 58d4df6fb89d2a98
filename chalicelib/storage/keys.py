"""Key formats and TTLs of the events and registry tables, and of the drop counters: the
ONLY module that addresses those items (the aggregates table's own items: aggregates/layout.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta


def epoch_s(at: datetime) -> int:
    return int(at.timestamp())


# ---- events -------------------------------------------------------------------------------


def event_pk(post_id: int, day: str, shard: int | None = None) -> str:
    """A Post's Day: ``P#{post}#{day}``, or its write shard ``P#{post}#{day}#s{n}`` while the
    post is hot (one partition key takes only ~1,000 write units a second)."""
    base = f"P#{post_id}#{day}"
    return base if shard is None else f"{base}#s{shard}"


def event_shard(pk: str) -> int | None:
    """The write shard of an event pk (None: the Day's base key); ValueError for a pk that
    is not an event's."""
    parts = pk.split("#")
    if parts[0] != "P" or len(parts) not in (3, 4):
        raise ValueError(f"{pk!r} is not an event key")
    if len(parts) == 3:
        return None
    if not parts[3].startswith("s") or not parts[3][1:].isdigit():
        raise ValueError(f"{pk!r} has no write shard after its Day")
    return int(parts[3][1:])


def write_shard(visitor: str, shards: int) -> int:
    """The write shard (1..``shards``) of a Visitor's looks at a hot post: always the same
    one for a Visitor, so the per-Day View dedup stays one conditional write."""
    digest = hashlib.blake2b(visitor.encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % shards


def view_sk(visitor: str) -> str:
    """The per-day View dedup key: one item per (Visitor, Post, Day)."""
    return f"V#{visitor}"


def impression_sk(event_id: str) -> str:
    return f"I#{event_id}"


def event_expires_at(day: str, ttl_days: int) -> int:
    """Raw events live ``ttl_days`` past the end of their Day, so a stalled close can catch up."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    return epoch_s(start + timedelta(days=1 + ttl_days))


# ---- registry -----------------------------------------------------------------------------

META_SK = "META"


def post_key(post_id: int) -> tuple[str, str]:
    return f"POST#{post_id}", META_SK


def hot_key(post_id: int) -> tuple[str, str]:
    """A post's hot mark, beside its registration: the registry sync rewrites ``META`` whole
    and never touches it, and one batched read fetches both (registry/posts.py)."""
    return f"POST#{post_id}", "HOT"


def player_key(player_key: str) -> tuple[str, str]:
    return f"PLAYER#{player_key}", META_SK


def rate_key(scope: str, subject: str) -> tuple[str, str]:
    """A rate-limit slot, e.g. scope ``imp`` (web Impressions) or ``player``."""
    return f"RATE#{scope}#{subject}", "RATE"


def once_key(scope: str, subject: str) -> tuple[str, str]:
    """A seen-once marker with a TTL, e.g. a player's (post, timestamp) for retransmissions."""
    return f"ONCE#{scope}#{subject}", "ONCE"


# ---- drop counters (kept in the aggregates table, beside aggregates/layout.py's items) ----


def drops_day_key(day: str) -> tuple[str, str]:
    return "DROPS", f"D#{day}"


def last_player_report_key() -> tuple[str, str]:
    """The last player report some container saw (operators check a bridge with it)."""
    return "DROPS", "LAST#player"
