"""Where things live in the ``aggregates`` table (docs/data-model.md): the ONLY module that
builds or parses its keys. Each Target (a post, an artist, the site) is one partition:

* ``D#{day}``: the live counters of an open Day (the stream handler's; they expire with the
  Day's raw events);
* ``S#{chunk}``, ``B{level}#{start}``: a closed Day's series row and pieces (closed.py);
* ``TOTAL``: lifetime sums through the last Day closed; ``RANK``: a post's by_views entry;
* ``POSTS`` (artists only): how many posts the artist has registered.

Beside them: ``DAY#{day}`` holds a Day's "post active" markers (the close's list of posts
to recount) and, for a hot post, one marker per write shard its looks used that Day (the
keys the close reads), ``CLOSE``/``WATERMARK`` the last closed Day, ``PUMP``/``STATE`` the stream
handler's position.
"""

from __future__ import annotations

from chalicelib.counts import SITE, Target

Key = tuple[str, str]

TOTAL_SK = "TOTAL"
# A post's entry in the by_views index (gpk, v): tiny, so moving it costs 1 WRU, and moved
# by the close only (not by every live batch, which would rewrite the index each time).
RANK_SK = "RANK"
POSTS_SK = "POSTS"
SITE_PK = "SITE"


def pk_of(target: Target) -> str:
    if target.kind == "post":
        return f"P#{target.id}"
    if target.kind == "artist":
        return f"A#{target.id}"
    return SITE_PK


def target_of(pk: str) -> Target:
    """``P#7`` -> the post 7, ``A#ana`` -> the artist ana, ``SITE`` -> the site."""
    if pk == SITE_PK:
        return SITE
    head, _, rest = pk.partition("#")
    if head == "P":
        return Target.post(int(rest))
    if head == "A":
        return Target.artist(rest)
    raise ValueError(f"{pk!r} is not a target's partition")


def day_sk(day: str) -> str:
    """An open Day's live counters."""
    return f"D#{day}"


def day_of_sk(sk: str) -> str:
    """``D#{day}`` (or ``S#{day}``, ``B0#{day}``) -> the Day."""
    return sk.split("#", 1)[1]


def series_sk(chunk_start: str) -> str:
    """A series chunk: the small per-Day figures of 8 aligned closed Days (closed.py)."""
    return f"S#{chunk_start}"


def piece_sk(level: int, start: str) -> str:
    """A piece: breakdowns and sketches of one closed Day (level 0) or of 2**level Days."""
    return f"B{level}#{start}"


def artist_posts_key(artist_id: str) -> Key:
    """The artist's registered-post counter (kept by the post registry, not by the close)."""
    return pk_of(Target.artist(artist_id)), POSTS_SK


def marker_pk(day: str) -> str:
    """The partition of a Day's "post active on this Day" markers (read by the close)."""
    return f"DAY#{day}"


def marker_key(day: str, post_id: int) -> Key:
    return marker_pk(day), f"P#{post_id}"


def shard_marker_key(day: str, post_id: int, shard: int) -> Key:
    """The post had looks under write shard ``shard`` of the Day (storage/keys.py)."""
    return marker_pk(day), f"P#{post_id}#s{shard}"


def marker_range(day: str) -> tuple[str, str, str]:
    """A Day's markers as a Query: their partition, the first and last sort key."""
    return marker_pk(day), "P#", "P#~"


def post_of_marker_sk(sk: str) -> int:
    return marker_of_sk(sk)[0]


def marker_of_sk(sk: str) -> tuple[int, int | None]:
    """``P#{post}`` -> (post, None); ``P#{post}#s{n}`` -> (post, n)."""
    _, post, *shard = sk.split("#")
    return int(post), int(shard[0][1:]) if shard else None


def watermark_key() -> Key:
    return "CLOSE", "WATERMARK"


def pump_state_key() -> Key:
    """Where the stream handler notes the newest record it processed (health, freshness)."""
    return "PUMP", "STATE"
