"""Registered posts: validation of their fields, and a short in-process cache for the
recording hot path.

A post is registered with its owner (Makapix's public user id) and, optionally, Makapix's
public ``sqid`` (its page is ``{site}/p/{sqid}``), its ``title`` and the https URL of its
artwork (``art_url``). ``visible`` false or ``deleted`` true make it stop counting: its
looks are dropped (``post_not_counting``), its stats stay readable by its owner (DESIGN §7).
A registration is a whole record: a field left out is cleared.

The recorders read a post with its hot mark (``PostDirectory.get_for_recording``): the
stream handler marks a post hot in an item of its own beside the registration
(chalicelib/rollup/hot.py), which the registry sync never writes, and this cache learns it
when it reloads the post, within ``cache_s``. A container whose write on the post's base
key is throttled holds the post hot at once (``fallback_shards``; docs/adr/0016).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from chalicelib.clock import Clock
from chalicelib.days import day_end, day_of
from chalicelib.errors import BadRequest, NotFound
from chalicelib.model import HotMark, PostRecord
from chalicelib.registry.cache import TtlCache
from chalicelib.storage.aggregates import Aggregates
from chalicelib.storage.ports import Registry

_OWNER_MAX = 128
TITLE_MAX = 128  # as Makapix's own limit
ART_URL_MAX = 2048
_SQID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# RFC 3986's characters (unreserved, reserved, "%"): a URL as it goes into an <img src>,
# already percent-encoded; no spaces, quotes, angle brackets or backslashes.
_URL_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _encodable(text: str) -> bool:
    """False for a str holding half a surrogate pair (JSON's "\\ud800"): no store takes it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_owner_id(owner_id: object) -> str:
    if (
        not isinstance(owner_id, str)
        or not owner_id.strip()
        or len(owner_id) > _OWNER_MAX
        or not _encodable(owner_id)
    ):
        raise BadRequest(
            f"owner_id must be a non-empty string of at most {_OWNER_MAX} characters",
            code="invalid_owner_id",
        )
    return owner_id.strip()


def check_sqid(value: object) -> str | None:
    """Makapix's public id of the post (letters, digits, ``-``, ``_``); absent, null or ""
    means unknown."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _SQID.match(value):
        raise BadRequest("sqid must be 1 to 64 letters, digits, '-' or '_'", code="invalid_sqid")
    return value


def check_label(value: object, field: str, max_chars: int) -> str | None:
    """Text people read (a post's title, a frame's name): at most ``max_chars`` characters of
    valid Unicode, control characters made spaces; absent, null or blank means none."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_chars or not _encodable(value):
        raise BadRequest(
            f"{field} must be a string of at most {max_chars} characters", code=f"invalid_{field}"
        )
    return _CONTROL.sub(" ", value).strip() or None


def check_title(value: object) -> str | None:
    """At most ``TITLE_MAX`` characters (``check_label``)."""
    return check_label(value, "title", TITLE_MAX)


def check_art_url(value: object) -> str | None:
    """An absolute https URL (no user name or password in it), at most ``ART_URL_MAX``
    characters, percent-encoded. ``javascript:``, ``data:``, ``http:`` and relative URLs are
    refused. Absent, null or "" means none."""
    if value is None or value == "":
        return None
    problem = "art_url must be an absolute https URL"
    if not isinstance(value, str) or len(value) > ART_URL_MAX or not _URL_CHARS.match(value):
        raise BadRequest(
            f"{problem} of at most {ART_URL_MAX} characters (percent-encoded)",
            code="invalid_art_url",
        )
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a bad port or an unclosed IPv6 bracket
        parts, port_ok = None, False
    if (
        parts is None
        or not port_ok
        or parts.scheme.lower() != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
    ):
        raise BadRequest(problem, code="invalid_art_url")
    return value


def check_flag(value: object, name: str, default: bool) -> bool:
    """A JSON boolean; absent or null means ``default``."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false", code=f"invalid_{name}")
    return value


@dataclass(frozen=True)
class PostDetails:
    """A post's registration as sent, validated (everything but its id)."""

    owner_id: str
    sqid: str | None = None
    title: str | None = None
    art_url: str | None = None
    visible: bool = True
    deleted: bool = False


def post_details(
    owner_id: object,
    sqid: object = None,
    title: object = None,
    art_url: object = None,
    visible: object = None,
    deleted: object = None,
) -> PostDetails:
    """Validate a post's fields (``BadRequest`` with an ``invalid_{field}`` code)."""
    return PostDetails(
        owner_id=check_owner_id(owner_id),
        sqid=check_sqid(sqid),
        title=check_title(title),
        art_url=check_art_url(art_url),
        visible=check_flag(visible, "visible", True),
        deleted=check_flag(deleted, "deleted", False),
    )


def post_body(record: PostRecord) -> dict[str, object]:
    """A registration as the registry routes answer it."""
    return {
        "post_id": record.post_id,
        "owner_id": record.owner_id,
        "sqid": record.sqid,
        "title": record.title,
        "art_url": record.art_url,
        "visible": record.visible,
        "deleted": record.deleted,
    }


K = TypeVar("K", int, str)
R = TypeVar("R")


@dataclass(frozen=True)
class Saved(Generic[K, R]):
    """What a directory's ``save`` did: every record as now stored, by id, and which ids
    were new and which were written (the new ones included)."""

    records: dict[K, R]
    created: frozenset[K] = frozenset()
    changed: frozenset[K] = frozenset()


class PostDirectory:
    """Reads posts through a small TTL cache: a post's owner rarely changes, reads cost money.

    ``hot_shards``: the write shards a post gets when a write on its base key is throttled
    (``fallback_shards``; 0: none, the throttled look fails).
    """

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        cache_s: int,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = 50_000,
        aggregates: Aggregates | None = None,
        hot_shards: int = 0,
    ) -> None:
        self._registry = registry
        # Keeps each artist's post count so artist stats never list every post to count them.
        self._aggregates = aggregates
        self._clock = clock
        self._hot_shards = hot_shards
        self._cache: TtlCache[int, PostRecord] = TtlCache(cache_s, monotonic, max_entries)
        # The recorders' own: posts with their hot marks (stats readers need no marks).
        self._recording: TtlCache[int, PostRecord] = TtlCache(cache_s, monotonic, max_entries)

    def get(self, post_id: int) -> PostRecord | None:
        return self._cache.get(post_id, self._registry.get_post)

    def get_for_recording(self, post_id: int) -> PostRecord | None:
        """The post with its hot mark (``PostRecord.hot``), both read in one batch."""
        return self._recording.get_many([post_id], self._registry.get_posts_with_hot).get(post_id)

    def fallback_shards(self, post_id: int, at: datetime) -> int:
        """A write on the post's base key was throttled at ``at``: until its cache entry is
        reloaded (by then the stream handler has usually marked it), this container holds the
        post hot for the rest of the Day; the number of write shards (0: none)."""
        if not self._hot_shards:
            return 0
        post = self.get_for_recording(post_id)
        if post is None:
            return self._hot_shards
        shards = post.shards_at(at)
        if not shards:
            shards = self._hot_shards
            held = HotMark(shards, until=day_end(day_of(at)))
            self._recording.put(post_id, replace(post, hot=held))
        return shards

    def get_many(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        """The registered posts among ``post_ids``, through the cache (one batched read for
        the ones it does not hold); unregistered ids are missing from the answer."""
        return self._cache.get_many(post_ids, self._registry.get_posts)

    def register(self, post_id: int, owner_id: object, **fields: object) -> tuple[PostRecord, bool]:
        """Register or update a post (``fields``: sqid, title, art_url, visible, deleted; a
        field left out is cleared). Returns the record and whether it is new."""
        return self.put(post_id, post_details(owner_id, **fields))

    def put(self, post_id: int, details: PostDetails) -> tuple[PostRecord, bool]:
        """Store one validated post. Returns the record and whether it is new."""
        saved = self.save({post_id: details})
        return saved.records[post_id], post_id in saved.created

    def save(self, wanted: Mapping[int, PostDetails]) -> Saved[int, PostRecord]:
        """Store each post as ``wanted`` says: one batched read of what is registered, one
        batched write of only what changes, and one counter update per artist whose post
        count moves. Sending the same records again writes nothing and counts nothing."""
        existing = self._registry.get_posts(wanted) if wanted else {}
        now = self._clock.now()
        records: dict[int, PostRecord] = {}
        writes: list[PostRecord] = []
        counts: Counter[str] = Counter()
        for post_id, details in wanted.items():
            old = existing.get(post_id)
            record = PostRecord(
                post_id=post_id,
                owner_id=details.owner_id,
                registered_at=old.registered_at if old else now,
                sqid=details.sqid,
                title=details.title,
                art_url=details.art_url,
                visible=details.visible,
                deleted=details.deleted,
            )
            records[post_id] = record
            if record == old:
                continue
            writes.append(record)
            if old is None or old.owner_id != record.owner_id:
                counts[record.owner_id] += 1
                if old is not None:
                    counts[old.owner_id] -= 1
        if writes:
            self._registry.put_posts(writes)
            for record in writes:
                self._forget(record.post_id)
        for owner, delta in sorted(counts.items()):
            if delta:
                self._count_posts(owner, delta)
        return Saved(
            records=records,
            created=frozenset(i for i in wanted if i not in existing),
            changed=frozenset(r.post_id for r in writes),
        )

    def delete(self, post_id: int) -> None:
        existing = self._registry.get_post(post_id) if self._aggregates is not None else None
        if not self._registry.delete_post(post_id):
            raise NotFound(f"post {post_id} is not registered", code="unknown_post")
        self._forget(post_id)
        if existing is not None:
            self._count_posts(existing.owner_id, -1)

    def _count_posts(self, owner_id: str, delta: int) -> None:
        if self._aggregates is None:
            return
        self._aggregates.add_artist_posts(owner_id, delta)

    def _forget(self, post_id: int) -> None:
        self._cache.forget(post_id)
        self._recording.forget(post_id)
