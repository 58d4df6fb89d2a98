"""A known dataset for the stats readers: looks -> the aggregate items docs/data-model.md
describes (live Days, and closed Days as series chunks, pieces and ``TOTAL``), and the
truth computed straight from the looks.

Test-only: the real writer is the close (rollup/close.py over storage/aggregates/closing.py).
This builder closes Days with the same encoders and rules (storage/aggregates/closed.py:
``to_build``, ``children``), so reader tests run on items whose every count is known,
whatever the writer does.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chalicelib.counts import Target
from chalicelib.days import iso
from chalicelib.storage.aggregates import closed, layout
from chalicelib.storage.aggregates.closed import Activity, DayRow, Piece


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
        out["first_at"] = iso(views[0])
        out["last_at"] = iso(views[-1])
    return out


def _measures(look: Look) -> list[str]:
    measure = "v" if look.view else "i"
    return [measure, "a" + measure] if look.signed_in else [measure]


@dataclass
class _Closer:
    """One target's closed Days, written as the close does: a series row and a one-Day
    piece per active Day, the blocks that become readable with it, the running TOTAL."""

    pk: str
    rows: dict[str, DayRow] = field(default_factory=dict)
    pieces: dict[tuple[int, int], Piece] = field(default_factory=dict)
    active: Activity = field(default_factory=Activity)
    totals: Counter[str] = field(default_factory=Counter)
    first_at: str | None = None
    last_at: str | None = None
    owner: str | None = None
    thru: str | None = None

    def close(self, day: str, looks: list[Look]) -> None:
        totals: Counter[str] = Counter()
        hours: dict[str, Counter[str]] = defaultdict(Counter)
        parts: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        for look in looks:
            for measure in _measures(look):
                totals[measure] += 1
                for dimension, value in _dims(look).items():
                    if dimension == "h":
                        hours[measure][value] += 1
                    else:
                        parts[measure][dimension][value] += 1
        seen = {look.visitor for look in looks if look.view}
        signed = {look.visitor for look in looks if look.view and look.signed_in}
        views = sorted(look.at for look in looks if look.view)
        first = iso(views[0]) if views else None
        last = iso(views[-1]) if views else None
        self.rows[day] = DayRow(
            totals=dict(totals),
            unique={"v": len(seen), "av": len(signed)},
            hours={m: dict(h) for m, h in hours.items()},
            first_at=first,
            last_at=last,
        )
        number = closed.day_number(day)
        piece = Piece(level=0, start=number, totals=dict(totals), first_at=first, last_at=last)
        piece.parts = closed.cap_parts(
            {m: {d: dict(c) for d, c in p.items()} for m, p in parts.items()}
        )
        for measure, visitors in (("v", seen), ("av", signed)):
            if visitors:
                piece.sketches[measure] = closed.sketch_of(visitors, closed.SKETCHES[measure][1])
        self.pieces[(0, number)] = piece
        self.active = self.active.with_day(number)
        for level, start in closed.to_build(number, self.active):
            children = closed.children(level, start, self.active)
            self.pieces[(level, start)] = closed.merge(
                level, start, [self.pieces[child] for child in children]
            )
        self.totals.update(totals)
        if first:
            self.first_at = min(self.first_at or first, first)
            self.last_at = max(self.last_at or "", str(last))
        self.owner = max(looks, key=lambda look: look.at).artist
        self.thru = day

    def items(self) -> list[dict[str, Any]]:
        if self.thru is None:
            return []
        chunks: dict[str, dict[str, DayRow]] = defaultdict(dict)
        for day, row in self.rows.items():
            chunks[closed.chunk_start(day)][day] = row
        out = [closed.series_item(self.pk, start, rows, 1) for start, rows in chunks.items()]
        out += [piece.item(self.pk) for piece in self.pieces.values()]
        total: dict[str, Any] = {
            "pk": self.pk,
            "sk": layout.TOTAL_SK,
            **{m: n for m, n in self.totals.items() if n},
            "v": self.totals["v"],
            "thru": self.thru,
            **self.active.attributes(),
        }
        if self.first_at:
            total["first_at"], total["last_at"] = self.first_at, self.last_at
        if self.pk.startswith("P#"):
            total["owner"] = self.owner
            gpk = layout.pk_of(Target.artist(str(self.owner)))
            out.append({"pk": self.pk, "sk": layout.RANK_SK, "gpk": gpk, "v": self.totals["v"]})
        return [*out, total]


def _groups(looks: list[Look], targets: Any) -> dict[str, dict[str, list[Look]]]:
    """pk -> Day -> its looks, for the targets each look counts in."""
    out: dict[str, dict[str, list[Look]]] = defaultdict(lambda: defaultdict(list))
    for look in looks:
        for pk in targets(look):
            out[pk][look.day].append(look)
    return out


def _everywhere(look: Look) -> tuple[str, str, str]:
    return f"P#{look.post}", f"A#{look.artist}", "SITE"


def close_target(
    pk: str, days: dict[str, list[Look]], closed_days: set[str]
) -> list[dict[str, Any]]:
    """The items of one target's closed Days (chunks, pieces, TOTAL, a post's RANK)."""
    closer = _Closer(pk)
    for day in sorted(days):
        if day in closed_days:
            closer.close(day, days[day])
    return closer.items()


def aggregate_items(looks: list[Look], closed_days: set[str]) -> list[dict[str, Any]]:
    """Every aggregate item of every post, artist and the site: a live ``D#`` item for
    every Day with looks (the close leaves them to their TTL, closed or not), and the
    closed Days (``closed_days``, closed in order) as the close writes them."""
    items = []
    for pk, days in sorted(_groups(looks, _everywhere).items()):
        items += [
            {"pk": pk, "sk": f"D#{day}", **_counters(group)} for day, group in sorted(days.items())
        ]
        items += close_target(pk, days, closed_days)
    return items


def total_items(looks: list[Look]) -> list[dict[str, Any]]:
    """What the posts listing reads: each post's ``TOTAL`` and ``RANK`` (by_views entry),
    with every Day of the looks closed."""
    every_day = {look.day for look in looks}
    return [
        item
        for pk, days in sorted(_groups(looks, lambda look: [f"P#{look.post}"]).items())
        for item in close_target(pk, days, every_day)
        if item["sk"] in (layout.TOTAL_SK, layout.RANK_SK)
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
        "first_view_at": iso(min(look.at for look in views)) if views else None,
        "last_view_at": iso(max(look.at for look in views)) if views else None,
        "authenticated_views": sum(look.signed_in for look in views),
        "authenticated_unique_visitors": len({look.visitor for look in views if look.signed_in}),
    }
