#!/usr/bin/env python3
"""What one stats request reads from DynamoDB: items and read request units (RRU).

PostStats over 30 closed Days for posts with 10^3, 10^5 and 10^6 Views, and ArtistStats
for an artist with 10 and with 2,000 posts. The aggregates are made by the real close
(``DayCloser.close_day``, over the in-memory store) from synthetic raw events shaped like
real traffic: Zipf countries and referrers, a day curve, device, source, channel and play
order mixes, two Impressions per View, three in ten Visitors signed in, about a third of
Visitors back on other Days. The items a request can read are then copied into moto in
server mode on 127.0.0.1, and the request runs through the real ``StatsService`` and
``DynamoAggregateStore``; a botocore hook counts every item each DynamoDB call returned
and its size.

RRU by DynamoDB's rules, from item sizes (moto's ConsumedCapacity is a placeholder):
Query: the page's summed item sizes, rounded up to 4 KB; GetItem and BatchGetItem: each
item rounded up to 4 KB (a missing key still costs the minimum); one unit per 4 KB strongly
consistent, half that eventually consistent. The adapters do not ask for ConsistentRead,
so eventually consistent is what is charged; both figures are printed.

Usage: python bench/bench_stats.py [--seed N]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from chalicelib.auth import Claims  # noqa: E402
from chalicelib.clock import FixedClock  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.counts import Target, fold  # noqa: E402
from chalicelib.model import ViewEvent  # noqa: E402
from chalicelib.rollup.close import DayCloser  # noqa: E402
from chalicelib.rollup.livecap import LiveCap  # noqa: E402
from chalicelib.storage.aggregates import Aggregates, layout  # noqa: E402
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore  # noqa: E402

DAYS = 30
LAST_DAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
POST_VIEWS = (1_000, 100_000, 1_000_000)
ARTIST_POSTS = (10, 2_000)
ARTIST_VIEWS = 100_000
GOAL_ITEMS = 40
GOAL_RRU = 10
ADMIN = Claims(sub="bench", role="admin")
BLOCK = 4096

# ---- realistic raw events -----------------------------------------------------------------

PLAYER_CHANNELS = (
    "all",
    "promoted",
    "named",
    "by_user",
    "hashtag",
    "artwork",
    "reactions",
    "institution",
    "pinned",
    "giphy",
    "klipy",
    "sdcard",
    "unknown",
)
DEVICES = ("desktop", "mobile", "tablet", "player")
SOURCES = ("web", "widget", "api", "player")


def _countries() -> list[str]:
    letters = "ABCDEFGHIJKLMNOPRSTUVZ"
    return [a + b for a in letters for b in letters][:160]


def _referrers(rng: random.Random) -> list[str]:
    words = ("pixel", "art", "retro", "gallery", "forum", "news", "social", "blog", "club")
    out = []
    for n in range(400):
        name = f"{rng.choice(words)}{rng.choice(words)}{n}"
        out.append(f"{name}.{rng.choice(('com', 'net', 'org', 'club', 'co.uk', 'io'))}")
    return out


def _zipf(n: int, s: float) -> np.ndarray:
    weights = 1 / np.arange(1, n + 1) ** s
    return weights / weights.sum()


@dataclass
class Mix:
    """The shape of traffic: Zipf countries/referrers, a day curve, device and source mixes."""

    rng: np.random.Generator
    countries: list[str]
    referrers: list[str]
    hours: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        curve = 1.2 + np.sin((np.arange(24) - 9) / 24 * 2 * np.pi)
        self.hours = curve / curve.sum()

    def events(
        self,
        post_id: int,
        owner: str,
        day: date,
        looks: list[tuple[str, bool, bool]],
        hours: int = 24,
    ) -> Iterator[ViewEvent]:
        """Raw events of one post and Day (its first ``hours`` hours), one per (Visitor, is
        a View, signed in)."""
        n = len(looks)
        pick = self.rng.choice
        countries = pick(len(self.countries), n, p=_zipf(len(self.countries), 1.3))
        devices = pick(len(DEVICES), n, p=[0.45, 0.33, 0.07, 0.15])
        sources = pick(len(SOURCES), n, p=[0.6, 0.1, 0.05, 0.25])
        channels = pick(len(PLAYER_CHANNELS), n, p=_zipf(len(PLAYER_CHANNELS), 1.0))
        orders = pick(3, n, p=[0.5, 0.3, 0.2])
        referred = self.rng.random(n) < 0.35
        referrers = pick(len(self.referrers), n, p=_zipf(len(self.referrers), 1.1))
        curve = self.hours[:hours] / self.hours[:hours].sum()
        at_hour = pick(hours, n, p=curve)
        seconds = self.rng.integers(0, 3600, n)
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        for k, (visitor, view, signed_in) in enumerate(looks):
            source = SOURCES[sources[k]]
            player = source == "player"
            yield ViewEvent(
                post_id=post_id,
                owner_id=owner,
                intent="view" if view else "impression",
                occurred_at=start + timedelta(hours=int(at_hour[k]), seconds=int(seconds[k])),
                visitor=visitor,
                authenticated=signed_in,
                source=source,
                device=DEVICES[devices[k]],
                country=self.countries[countries[k]],
                channel=PLAYER_CHANNELS[channels[k]] if player else None,
                play_order=int(orders[k]) if player else None,
                referrer_domain=self.referrers[referrers[k]] if referred[k] else None,
            )


def daily_visitors(total_views: int, rng: random.Random) -> list[list[str]]:
    """30 Days of distinct Visitors (a Visitor views a post at most once a Day); about a
    third return on other Days."""
    per_day = total_views // DAYS
    pool = max(per_day, total_views * 2 // 3)
    return [[f"h:{n:x}" for n in rng.sample(range(pool), per_day)] for _ in range(DAYS)]


def viewers_today(total_views: int, rng: random.Random) -> list[str]:
    """Today's Visitors so far (``NOW`` is mid-morning), from the same pool."""
    per_day = total_views // DAYS
    pool = max(per_day, total_views * 2 // 3)
    return [f"h:{n:x}" for n in rng.sample(range(pool), per_day * NOW.hour // 24)]


def looks_of(viewers: list[str], rng: random.Random) -> list[tuple[str, bool, bool]]:
    """A Day's looks at one post: each Visitor's View, and two Impressions per View (by
    Visitors of the same Day); three in ten Visitors signed in."""
    signed = {v for v in viewers if int(v[2:], 16) % 10 < 3}
    views = [(v, True, v in signed) for v in viewers]
    shown = [rng.choice(viewers) for _ in range(2 * len(viewers))] if viewers else []
    return views + [(v, False, v in signed) for v in shown]


class SyntheticEvents:
    """The raw events the close reads, made when it asks for a (post, Day) and never kept:
    a 10^6-View month would not fit in memory as objects."""

    def __init__(self) -> None:
        self.makers: dict[tuple[int, str], Callable[[], Iterator[ViewEvent]]] = {}

    def day_events(self, post_id: int, day: str, shard: int | None = None) -> Iterator[ViewEvent]:
        if shard is not None:  # never hot: its looks are all under the base key
            return iter(())
        maker = self.makers.get((post_id, day))
        return maker() if maker else iter(())


def close_month(
    days: list[date], plan: dict[tuple[int, date], list[str]], owner: str, mix: Mix, seed: int
) -> MemoryAggregateStore:
    """Run the real close over 30 Days of events: ``plan`` gives each (post, Day) its
    Viewers. Returns the in-memory aggregates as the close leaves them."""
    store = MemoryAggregateStore()
    events = SyntheticEvents()
    for (post_id, day), viewers in plan.items():
        rng = random.Random(f"{seed}-{post_id}-{day}")
        events.makers[(post_id, day.isoformat())] = lambda p=post_id, d=day, v=viewers, r=rng: (
            mix.events(p, owner, d, looks_of(v, r))
        )
    store.put_items(
        {"pk": layout.marker_pk(day.isoformat()), "sk": layout.marker_key(day.isoformat(), post)[1]}
        for post, day in plan
    )
    closer = DayCloser(
        Aggregates(store), events, FixedClock(NOW), grace_s=0, budget_s=float("inf"), ttl_days=35
    )
    for day in days:
        closer.close_day(day.isoformat(), NOW)
        store.advance_watermark(day.isoformat())
    return store


def readable(store: MemoryAggregateStore, pk: str) -> list[dict[str, Any]]:
    """The items of ``pk`` a stats request can read (series chunks, pieces, TOTAL, RANK)."""
    return [dict(item) for (ipk, _), item in store.items.items() if ipk == pk]


# ---- counting reads -----------------------------------------------------------------------


def typed_size(value: dict[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        digits = len(raw.lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + typed_size(v) + 1 for k, v in raw.items())
    if kind == "L":
        return 3 + sum(typed_size(v) + 1 for v in raw)
    if kind in ("SS", "BS"):
        return sum(len(v.encode() if isinstance(v, str) else v) for v in raw)
    if kind == "NS":
        return sum(typed_size({"N": v}) for v in raw)
    raise TypeError(kind)


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + typed_size(value) for name, value in item.items())


@dataclass
class Reads:
    calls: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    blocks: float = 0.0  # 4 KB read blocks (strongly consistent units)
    consistent: bool = False
    by_sk: Counter[str] = field(default_factory=Counter)
    bytes_: int = 0

    def unit(self, eventually: bool) -> float:
        return self.blocks / 2 if eventually else self.blocks


class ReadCounter:
    """Hooks a boto3 DynamoDB client: every read call's items, sizes and request units."""

    def __init__(self, client: Any) -> None:
        self.reads = Reads()
        self._asked: dict[str, int] = {}
        client.meta.events.register("provide-client-params.dynamodb.*", self._params)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def reset(self) -> Reads:
        done, self.reads = self.reads, Reads()
        return done

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if params.get("ConsistentRead"):
            self.reads.consistent = True
        if model.name == "BatchGetItem":
            self._asked["batch"] = sum(len(v["Keys"]) for v in params["RequestItems"].values())
            if any(v.get("ConsistentRead") for v in params["RequestItems"].values()):
                self.reads.consistent = True

    def _count(self, table: str, items: list[dict[str, Any]]) -> None:
        for item in items:
            self.reads.items[table] += 1
            self.reads.bytes_ += item_size(item)
            sk = item.get("sk", {}).get("S", "")
            self.reads.by_sk[sk.split("#", 1)[0] if "#" in sk else sk] += 1

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        name = model.name
        if name not in ("Query", "GetItem", "BatchGetItem", "Scan"):
            return
        self.reads.calls[name] += 1
        if name in ("Query", "Scan"):
            items = parsed.get("Items", [])
            self._count("query", items)
            self.reads.blocks += max(1, math.ceil(sum(item_size(i) for i in items) / BLOCK))
        elif name == "GetItem":
            item = parsed.get("Item")
            self._count("get", [item] if item else [])
            self.reads.blocks += max(1, math.ceil(item_size(item) / BLOCK)) if item else 1
        else:
            found = [i for items in parsed.get("Responses", {}).values() for i in items]
            self._count("batch", found)
            self.reads.blocks += sum(max(1, math.ceil(item_size(i) / BLOCK)) for i in found)
            self.reads.blocks += max(0, self._asked.pop("batch", len(found)) - len(found))


# ---- the run ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slow_client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        region_name=settings.region,
        endpoint_url=settings.dynamodb_endpoint,
        config=Config(read_timeout=300, retries={"max_attempts": 1}),
    )


def piece_composition(items: list[dict[str, Any]]) -> dict[str, float]:
    """Average KB of a series chunk and of a one-Day piece, the piece by part (zlib'd
    breakdowns and totals, the two sketches), and the biggest block."""

    def kb(values: list[int]) -> float:
        return round(sum(values) / max(1, len(values)) / 1024, 2)

    def size(item: dict[str, Any], name: str) -> int:
        value = item.get(name)
        return len(value) if isinstance(value, bytes) else 0

    chunks = [i for i in items if str(i["sk"]).startswith("S#")]
    days = [i for i in items if str(i["sk"]).startswith("B0#")]
    blocks = [i for i in items if str(i["sk"]).startswith("B") and i not in days]
    return {
        "series chunk": kb([_plain_size(i) for i in chunks]),
        "day piece": kb([_plain_size(i) for i in days]),
        "  breakdowns": kb([size(i, "b") for i in days]),
        "  sketch v": kb([size(i, "hll") for i in days]),
        "  sketch av": kb([size(i, "ahll") for i in days]),
        "biggest block": kb([max((_plain_size(i) for i in blocks), default=0)]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import logging
    import os

    from moto.server import ThreadedMotoServer

    from chalicelib.storage.aggregates.items_dynamodb import DynamoAggregateStore
    from chalicelib.storage.dynamodb import DynamoRegistry
    from chalicelib.storage.provision import ensure_tables
    from chalicelib.wiring import dynamodb_client, dynamodb_services

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    started = time.monotonic()
    try:
        suffix = uuid.uuid4().hex[:8]
        settings = Settings(
            dynamodb_endpoint=f"http://127.0.0.1:{port}",
            events_table=f"b-{suffix}-events",
            aggregates_table=f"b-{suffix}-aggregates",
            registry_table=f"b-{suffix}-registry",
            jwt_secret="bench",
            visitor_key="bench",
        )
        ensure_tables(dynamodb_client(settings), settings.table_names())
        client = slow_client(settings)
        services = replace(
            dynamodb_services(settings, clock=FixedClock(NOW)),
            registry=DynamoRegistry(client, settings.registry_table),
            aggregate_items=DynamoAggregateStore(client, settings.aggregates_table),
            client=client,
        )
        counter = ReadCounter(client)
        writer = DynamoAggregateStore(slow_client(settings), settings.aggregates_table)
        rng = random.Random(args.seed)
        mix = Mix(np.random.default_rng(args.seed), _countries(), _referrers(rng))
        days = [LAST_DAY - timedelta(days=DAYS - 1 - n) for n in range(DAYS)]
        params = {"from": days[0].isoformat(), "to": days[-1].isoformat()}
        services.aggregate_items.advance_watermark(LAST_DAY.isoformat())

        today = NOW.date()
        default = {"from": (today - timedelta(days=DAYS - 1)).isoformat(), "to": today.isoformat()}
        results: dict[str, Any] = {
            "post_stats": {},
            "post_stats_with_today": {},
            "artist_stats": {},
        }
        written: dict[int, list[dict[str, Any]]] = {}
        print(
            f"PostStats, one request each: {DAYS} closed Days ({params['from']}..{params['to']}), "
            f"and the default range ({default['from']}..{default['to']}: {DAYS - 1} closed Days "
            f"and today, live until {NOW:%H:%M} UTC):"
        )
        print(
            f"  {'views':>9} {'range':>8} {'items':>6} {'S#':>4} {'B#':>4} {'D#':>4} {'other':>6} "
            f"{'KB read':>8} {'RRU(EC)':>8} {'RRU(SC)':>8} {'calls':>6}  pieces read by level"
        )

        def post_request(
            post_id: int, views: int, range_: dict[str, str], label: str
        ) -> dict[str, Any]:
            services.posts._forget(post_id)  # a cold cache: the owner check reads the registry
            counter.reset()
            stats = services.stats.post_stats(ADMIN, str(post_id), range_)
            reads = counter.reset()
            total = sum(reads.items.values())
            pieces = sum(v for k, v in reads.by_sk.items() if k.startswith("B"))
            other = total - reads.by_sk["S"] - reads.by_sk["D"] - pieces
            ec, sc = reads.unit(not reads.consistent), reads.unit(False)
            levels = " ".join(
                f"{k}:{v}" for k, v in sorted(reads.by_sk.items()) if k.startswith("B")
            )
            print(
                f"  {views:>9,} {label:>8} {total:>6} {reads.by_sk['S']:>4} {pieces:>4} "
                f"{reads.by_sk['D']:>4} {other:>6} {reads.bytes_ / 1024:>8.1f} {ec:>8.1f} "
                f"{sc:>8.1f} {sum(reads.calls.values()):>6}  {levels}"
            )
            return {
                "stats": stats,
                "items": total,
                "rru_eventually_consistent": ec,
                "rru_strongly_consistent": sc,
                "kb_read": round(reads.bytes_ / 1024, 1),
                "calls": dict(reads.calls),
            }

        for n, views in enumerate(POST_VIEWS, 1):
            post_id = 1000 + n
            owner = f"artist-p{n}"
            services.posts.register(post_id, owner)
            pk = layout.pk_of(Target.post(post_id))
            by_day = daily_visitors(views, rng)
            distinct = len(set().union(*by_day))
            phase = time.monotonic()
            plan = {(post_id, day): viewers for day, viewers in zip(days, by_day, strict=True)}
            items = readable(close_month(days, plan, owner, mix, args.seed), pk)
            closed_s = time.monotonic() - phase
            phase = time.monotonic()
            writer.put_items(items)
            # Today's live item, as the stream handler's updates leave it.
            looks = looks_of(viewers_today(views, rng), random.Random(f"{args.seed}-today"))
            # One container's LiveCap, as one stream handler applies it.
            tallies = LiveCap().apply(
                fold(mix.events(post_id, owner, today, looks, hours=NOW.hour))
            )
            Aggregates(writer).add_live(
                {k: t for k, t in tallies.items() if k[0] == Target.post(post_id)}, 35
            )
            print(
                f"    (closed {DAYS} Days of {views:,} Views in {closed_s:.0f} s; "
                f"wrote {len(items)} items and today's in {time.monotonic() - phase:.0f} s)",
                file=sys.stderr,
            )
            closed_range = post_request(post_id, views, params, "30")
            stats = closed_range.pop("stats")
            assert stats["views"] == views // DAYS * DAYS, stats["views"]
            results["post_stats"][str(views)] = {
                **closed_range,
                "unique_visitors": stats["unique_visitors"],
                "true_distinct_visitors": distinct,
                "unique_visitors_error_pct": round(
                    100 * (stats["unique_visitors"] / distinct - 1), 2
                ),
            }
            with_today = post_request(post_id, views, default, "29+today")
            with_today.pop("stats")
            results["post_stats_with_today"][str(views)] = with_today
            written[views] = items

        print(f"\nArtistStats, {DAYS} closed Days, {ARTIST_VIEWS:,} Views over the artist's posts:")
        print(
            f"  {'posts':>6} {'items':>6} {'KB read':>8} {'RRU(EC)':>8} {'RRU(SC)':>8} {'calls':>6}  total_posts"
        )
        for n, count in enumerate(ARTIST_POSTS, 1):
            artist = f"artist-{count}"
            pk = layout.pk_of(Target.artist(artist))
            shares = _zipf(count, 1.0)
            plan: dict[tuple[int, date], list[str]] = {}
            for day, viewers in zip(days, daily_visitors(ARTIST_VIEWS, rng), strict=True):
                for viewer, rank in zip(
                    viewers, mix.rng.choice(count, len(viewers), p=shares), strict=True
                ):
                    plan.setdefault((10_000 * n + int(rank), day), []).append(viewer)
            phase = time.monotonic()
            store = close_month(days, plan, artist, mix, args.seed)
            posts = {post for post, _ in plan}
            lifetime = store.get_items(
                (layout.pk_of(Target.post(p)), sk)
                for p in posts
                for sk in (layout.TOTAL_SK, layout.RANK_SK)
            )
            items = readable(store, pk) + list(lifetime.values())
            closed_s = time.monotonic() - phase
            writer.put_items(items)
            print(
                f"    (closed {DAYS} Days of {len(posts):,} posts in {closed_s:.0f} s)",
                file=sys.stderr,
            )
            # The registry's post counter, as PostDirectory.register keeps it (+1 per post).
            services.aggregates.add_artist_posts(artist, count)
            counter.reset()
            stats = services.stats.artist_stats(ADMIN, artist, params)
            reads = counter.reset()
            assert stats["views"] == ARTIST_VIEWS // DAYS * DAYS, stats["views"]
            total = sum(reads.items.values())
            ec, sc = reads.unit(not reads.consistent), reads.unit(False)
            print(
                f"  {count:>6,} {total:>6} {reads.bytes_ / 1024:>8.1f} {ec:>8.1f} {sc:>8.1f} "
                f"{sum(reads.calls.values()):>6}  {stats['total_posts']}"
            )
            results["artist_stats"][str(count)] = {
                "items": total,
                "rru_eventually_consistent": ec,
                "rru_strongly_consistent": sc,
                "kb_read": round(reads.bytes_ / 1024, 1),
                "calls": dict(reads.calls),
                "total_posts": stats["total_posts"],
            }
        print(
            "\n  30-day unique visitors vs the true distinct count: "
            + ", ".join(
                f"{int(v):,} views {r['unique_visitors_error_pct']:+.2f} %"
                for v, r in results["post_stats"].items()
            )
        )
        composition = piece_composition(written[POST_VIEWS[-1]])
        print(
            f"  a {POST_VIEWS[-1]:,}-View post's items, KB: "
            + ", ".join(f"{name.strip()} {kb:.2f}" for name, kb in composition.items())
        )
        results["item_kb"] = composition
        post_items = {r["items"] for r in results["post_stats"].values()}
        artist = results["artist_stats"]
        live = results["post_stats_with_today"]
        print(
            f"\nPostStats items per request: {sorted(post_items)} (goal <= {GOAL_ITEMS}); "
            f"RRU(EC) {[r['rru_eventually_consistent'] for r in results['post_stats'].values()]} "
            f"(goal <= {GOAL_RRU}); with today live: items "
            f"{sorted({r['items'] for r in live.values()})}, RRU(EC) "
            f"{[r['rru_eventually_consistent'] for r in live.values()]}"
        )
        print(
            f"ArtistStats flat in posts: {artist['10']['items']} items for 10 posts, "
            f"{artist['2000']['items']} for 2,000"
        )
        print(
            f"(harness time {time.monotonic() - started:.0f} s, moto over loopback; not a latency figure)"
        )
        results["goal"] = {"items": GOAL_ITEMS, "rru": GOAL_RRU}
        print("BENCH " + json.dumps({"bench": "stats", **results}, sort_keys=True))
    finally:
        server.stop()
    return 0


def _plain_size(item: dict[str, Any]) -> int:
    from chalicelib.storage import codec

    return codec.item_size(item)


if __name__ == "__main__":
    sys.exit(main())
