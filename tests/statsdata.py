"""A known dataset for the stats readers: looks -> the aggregate items docs/data-model.md
describes (live or closed Days, sketches), and the truth computed straight from the looks.

Test-only: the real writer is chalicelib/rollup. This builder lets reader tests run on
items whose every count is known, whatever the writer does.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import datasketches

from chalicelib.storage import codec


@dataclass(frozen=True)
class Look:
    post: int
    artist: str
    visitor: str
    at: datetime
    view: bool = True
    signed_in: bool = False
    country: str = "??"
    device: str = "desktop"
    source: str = "web"
    channel: str | None = None
    play_order: int | None = None
    referrer: str | None = None

    @property
    def day(self) -> str:
        return self.at.strftime("%Y-%m-%d")


def _dims(look: Look) -> dict[str, str]:
    dims = {
        "c": look.country,
        "d": look.device,
        "s": look.source,
        "ch": look.channel or "-",
        "h": f"{look.at.hour:02d}",
    }
    if look.play_order is not None:
        dims["po"] = str(look.play_order)
    if look.referrer:
        dims["r"] = look.referrer
    return dims


def _counters(looks: list[Look]) -> dict[str, Any]:
    item: Counter[str] = Counter()
    for look in looks:
        measures = ["v" if look.view else "i"]
        if look.signed_in:
            measures.append("av" if look.view else "ai")
        for measure in measures:
            item[measure] += 1
            for dim, value in _dims(look).items():
                item[f"{measure}{dim}:{value}"] += 1
    out: dict[str, Any] = dict(item)
    views = sorted(look.at for look in looks if look.view)
    if views:
        out["first_at"] = codec.iso(views[0])
        out["last_at"] = codec.iso(views[-1])
    return out


def sketch(visitors: set[str], lg_k: int = 12) -> bytes:
    hll = datasketches.hll_sketch(lg_k, datasketches.tgt_hll_type.HLL_4)
    for visitor in sorted(visitors):
        hll.update(visitor)
    return bytes(hll.serialize_compact())


def aggregate_items(looks: list[Look], closed_days: set[str]) -> list[dict[str, Any]]:
    """Every D#/H# item of every post, artist and the site, closed Days with uv/auv/sketches."""
    groups: dict[tuple[str, str], list[Look]] = defaultdict(list)
    for look in looks:
        for pk in (f"P#{look.post}", f"A#{look.artist}", "SITE"):
            groups[(pk, look.day)].append(look)
    items = []
    for (pk, day), group in sorted(groups.items()):
        item = {"pk": pk, "sk": f"D#{day}", **_counters(group)}
        if day in closed_days:
            seen = {look.visitor for look in group if look.view}
            signed = {look.visitor for look in group if look.view and look.signed_in}
            item.update(
                closed=True, closed_at="2026-12-01T00:10:00.000Z", uv=len(seen), auv=len(signed)
            )
            items.append({"pk": pk, "sk": f"H#{day}", "hll": sketch(seen), "ahll": sketch(signed)})
        items.append(item)
    return items


def total_items(looks: list[Look]) -> list[dict[str, Any]]:
    """Lifetime ``TOTAL`` items of posts (with ``gpk`` for the by_views index)."""
    by_post: dict[int, list[Look]] = defaultdict(list)
    for look in looks:
        by_post[look.post].append(look)
    return [
        {"pk": f"P#{post}", "sk": "TOTAL", "gpk": f"A#{group[0].artist}", **_counters(group)}
        for post, group in by_post.items()
    ]


def random_looks(
    rng: random.Random,
    *,
    n: int,
    first: date,
    days: int,
    posts: dict[int, str],
    visitors: int = 200,
) -> list[Look]:
    """Looks with Views deduplicated per (Visitor, post, UTC Day), as the events table does."""
    out: list[Look] = []
    seen: set[tuple[str, int, str]] = set()
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    for _ in range(n):
        post = rng.choice(sorted(posts))
        visitor = f"h:{rng.randrange(visitors)}"
        at = start + timedelta(seconds=rng.randrange(days * 86_400))
        view = rng.random() < 0.7
        if view:
            key = (visitor, post, at.strftime("%Y-%m-%d"))
            if key in seen:
                continue
            seen.add(key)
        out.append(
            Look(
                post=post,
                artist=posts[post],
                visitor=visitor,
                at=at,
                view=view,
                signed_in=rng.random() < 0.3,
                country=rng.choice(
                    ["BR", "US", "DE", "JP", "FR", "??", "IN", "GB", "CA", "MX", "AR", "PT"]
                ),
                device=rng.choice(["desktop", "mobile", "tablet", "player"]),
                source=rng.choice(["web", "widget", "api", "player"]),
                channel=rng.choice([None, "all", "reactions", "hashtag"]),
                play_order=rng.choice([None, 0, 1, 2]),
                referrer=rng.choice([None, None, "example.com", "reddit.com"]),
            )
        )
    return out


def truth(looks: list[Look], tz: Any, first: date, last: date) -> dict[str, Any]:
    """What stats must say, counted straight from the looks (local dates in ``tz``)."""
    inside = [look for look in looks if first <= look.at.astimezone(tz).date() <= last]
    views = [look for look in inside if look.view]
    shown = [look for look in inside if not look.view]

    def by(group: list[Look], dim: str) -> dict[str, int]:
        return dict(Counter(v for look in group if (v := _dims(look).get(dim)) is not None))

    daily: dict[str, dict[str, Any]] = {}
    for n in range((last - first).days + 1):
        local = first + timedelta(days=n)
        on_day = [look for look in inside if look.at.astimezone(tz).date() == local]
        daily[local.isoformat()] = {
            "views": sum(look.view for look in on_day),
            "impressions": sum(not look.view for look in on_day),
            "unique_visitors": len({look.visitor for look in on_day if look.view}),
        }
    hours = [0] * 24
    for look in views:
        hours[look.at.astimezone(tz).hour] += 1
    return {
        "views": len(views),
        "impressions": len(shown),
        "unique_visitors": len({look.visitor for look in views}),
        "by_country": by(views, "c"),
        "by_device": by(views, "d"),
        "by_source": by(views, "s"),
        "by_channel": by(views, "ch"),
        "by_play_order": by(views, "po"),
        "by_referrer": by(views, "r"),
        "impressions_by_country": by(shown, "c"),
        "by_hour_local": hours,
        "daily": daily,
        "first_view_at": codec.iso(min(look.at for look in views)) if views else None,
        "last_view_at": codec.iso(max(look.at for look in views)) if views else None,
        "authenticated_views": sum(look.signed_in for look in views),
        "authenticated_unique_visitors": len({look.visitor for look in views if look.signed_in}),
    }
