#!/usr/bin/env python3
"""What one stats request reads from DynamoDB: items and read request units (RRU).

PostStats over 30 closed Days for posts with 10^3, 10^5 and 10^6 Views, and ArtistStats
for an artist with 10 and with 2,000 posts. The aggregate items are written as the close
would leave them (closed ``D#{day}`` counters with every breakdown, the close's cap on
open-ended ones, ``H#{day}`` HLL sketches built from that many distinct Visitors, lifetime
``TOTAL`` items), into moto in server mode on 127.0.0.1. The request then runs through the
real ``StatsService`` and ``DynamoAggregateStore``; a botocore hook counts every item each
DynamoDB call returned and its size.

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
from chalicelib.rollup.counters import cap_open_ended  # noqa: E402
from chalicelib.rollup.sketches import visitor_sketch  # noqa: E402
from chalicelib.storage import keys  # noqa: E402

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

# ---- realistic counters -------------------------------------------------------------------

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

    def split(self, n: int, names: list[str] | tuple[str, ...], p: np.ndarray) -> dict[str, int]:
        if n <= 0:
            return {}
        counts = self.rng.multinomial(n, p)
        return {name: int(c) for name, c in zip(names, counts, strict=True) if c}

    def measure(self, prefix: str, n: int) -> dict[str, int]:
        """One measure's counters (``v``, ``i``, ``av``, ``ai``) for ``n`` looks."""
        if n <= 0:
            return {}
        out: dict[str, int] = {prefix: n}
        parts = {
            "c": self.split(n, self.countries, _zipf(len(self.countries), 1.3)),
            "d": self.split(n, DEVICES, np.array([0.45, 0.33, 0.07, 0.15])),
            "s": self.split(n, SOURCES, np.array([0.6, 0.1, 0.05, 0.25])),
            "h": self.split(n, [f"{h:02d}" for h in range(24)], self.hours),
        }
        player = parts["s"].get("player", 0)
        parts["ch"] = self.split(n - player, ["-"], np.array([1.0]))
        for name, c in self.split(
            player, PLAYER_CHANNELS, _zipf(len(PLAYER_CHANNELS), 1.0)
        ).items():
            parts["ch"][name] = c
        parts["po"] = self.split(player, ["0", "1", "2"], np.array([0.5, 0.3, 0.2]))
        referred = int(n * 0.35)
        parts["r"] = self.split(referred, self.referrers, _zipf(len(self.referrers), 1.1))
        for dimension, counts in parts.items():
            for value, c in counts.items():
                out[f"{prefix}{dimension}:{value}"] = c
        return out

    def counters(self, views: int) -> dict[str, int]:
        impressions = views * 2
        counts: dict[str, int] = {}
        for prefix, n in (
            ("v", views),
            ("i", impressions),
            ("av", views * 3 // 10),
            ("ai", impressions * 3 // 10),
        ):
            counts.update(self.measure(prefix, n))
        return cap_open_ended(counts)


def day_items(
    pk: str, day: date, views: int, mix: Mix, visitors: list[str], owner: str | None
) -> list[dict[str, Any]]:
    """A closed Day as the close writes it: counters + the sketches of its Visitors."""
    counts = mix.counters(views)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    item: dict[str, Any] = {"pk": pk, "sk": keys.day_sk(day.isoformat()), **counts}
    if views:
        item["first_at"] = (start + timedelta(minutes=3)).isoformat(timespec="milliseconds")[
            :-6
        ] + "Z"
        item["last_at"] = (start + timedelta(hours=23, minutes=58)).isoformat(
            timespec="milliseconds"
        )[:-6] + "Z"
    if owner:
        item["owner"] = owner
    signed_in = visitors[: len(visitors) * 3 // 10]
    item.update(
        closed=True,
        closed_at=NOW.isoformat(timespec="milliseconds")[:-6] + "Z",
        uv=len(visitors),
        auv=len(signed_in),
    )
    items = [item]
    if visitors:
        sketch: dict[str, Any] = {
            "pk": pk,
            "sk": f"H#{day.isoformat()}",
            "hll": visitor_sketch(visitors),
        }
        if signed_in:
            sketch["ahll"] = visitor_sketch(signed_in)
        items.append(sketch)
    return items


def daily_visitors(total_views: int, rng: random.Random) -> list[list[str]]:
    """30 Days of distinct Visitors (a Visitor views a post at most once a Day); about a
    third return on other Days."""
    per_day = total_views // DAYS
    pool = max(per_day, total_views * 2 // 3)
    return [[f"h:{n:x}" for n in rng.sample(range(pool), per_day)] for _ in range(DAYS)]


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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import logging
    import os

    from moto.server import ThreadedMotoServer

    from chalicelib.storage.aggregates_dynamodb import DynamoAggregateStore
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
        ensure_tables(dynamodb_client(settings), settings)
        # moto takes seconds to answer for items of 1,000 attributes (harness overhead): the
        # same adapters over a client that waits for it.
        client = slow_client(settings)
        services = replace(
            dynamodb_services(settings, clock=FixedClock(NOW)),
            registry=DynamoRegistry(client, settings.registry_table),
            aggregates=DynamoAggregateStore(client, settings.aggregates_table),
            client=client,
        )
        counter = ReadCounter(client)
        writer = DynamoAggregateStore(slow_client(settings), settings.aggregates_table)
        rng = random.Random(args.seed)
        mix = Mix(np.random.default_rng(args.seed), _countries(), _referrers(rng))
        days = [LAST_DAY - timedelta(days=DAYS - 1 - n) for n in range(DAYS)]
        params = {"from": days[0].isoformat(), "to": days[-1].isoformat()}
        services.aggregates.advance_watermark(LAST_DAY.isoformat())

        results: dict[str, Any] = {"post_stats": {}, "artist_stats": {}}
        sizes: dict[int, dict[str, Any]] = {}
        print(
            f"PostStats, {DAYS} closed Days ({params['from']}..{params['to']}), one request each:"
        )
        print(
            f"  {'views':>9} {'items':>6} {'D#':>4} {'H#':>4} {'other':>6} {'KB read':>8} "
            f"{'RRU(EC)':>8} {'RRU(SC)':>8} {'calls':>6}  D# item KB / H# item KB"
        )
        for n, views in enumerate(POST_VIEWS, 1):
            post_id = 1000 + n
            services.posts.register(post_id, f"artist-p{n}")
            pk = keys.post_aggregate_pk(post_id)
            items: list[dict[str, Any]] = []
            by_day = daily_visitors(views, rng)
            distinct = len(set().union(*by_day))
            for day, visitors in zip(days, by_day, strict=True):
                items += day_items(pk, day, len(visitors), mix, visitors, f"artist-p{n}")
            phase = time.monotonic()
            writer.put_items(items)
            print(f"    (wrote {len(items)} items in {time.monotonic() - phase:.0f} s)", file=sys.stderr)
            d_kb = sum(_plain_size(i) for i in items if i["sk"].startswith("D#")) / DAYS / 1024
            h_kb = sum(_plain_size(i) for i in items if i["sk"].startswith("H#")) / DAYS / 1024
            services.posts._forget(post_id)  # a cold cache: the owner check reads the registry
            counter.reset()
            stats = services.stats.post_stats(ADMIN, str(post_id), params)
            reads = counter.reset()
            assert stats["views"] == views // DAYS * DAYS, stats["views"]
            total = sum(reads.items.values())
            other = total - reads.by_sk["D"] - reads.by_sk["H"]
            ec, sc = reads.unit(not reads.consistent), reads.unit(False)
            print(
                f"  {views:>9,} {total:>6} {reads.by_sk['D']:>4} {reads.by_sk['H']:>4} {other:>6} "
                f"{reads.bytes_ / 1024:>8.1f} {ec:>8.1f} {sc:>8.1f} {sum(reads.calls.values()):>6}"
                f"  {d_kb:.1f} / {h_kb:.1f}"
            )
            results["post_stats"][str(views)] = {
                "items": total,
                "rru_eventually_consistent": ec,
                "rru_strongly_consistent": sc,
                "kb_read": round(reads.bytes_ / 1024, 1),
                "calls": dict(reads.calls),
                "unique_visitors": stats["unique_visitors"],
                "true_distinct_visitors": distinct,
                "unique_visitors_error_pct": round(
                    100 * (stats["unique_visitors"] / distinct - 1), 2
                ),
            }
            sizes[views] = items[0]

        print(f"\nArtistStats, {DAYS} closed Days, {ARTIST_VIEWS:,} Views over the artist's posts:")
        print(
            f"  {'posts':>6} {'items':>6} {'KB read':>8} {'RRU(EC)':>8} {'RRU(SC)':>8} {'calls':>6}  total_posts"
        )
        for n, count in enumerate(ARTIST_POSTS, 1):
            artist = f"artist-{count}"
            pk = keys.artist_aggregate_pk(artist)
            items = []
            for day, visitors in zip(days, daily_visitors(ARTIST_VIEWS, rng), strict=True):
                items += day_items(pk, day, len(visitors), mix, visitors, None)
            # Lifetime TOTAL items of every post (the by_views index lists them).
            shares = _zipf(count, 1.0) * ARTIST_VIEWS
            for rank in range(count):
                post_id = 10_000 * n + rank
                lifetime = int(shares[rank])
                items.append(
                    {
                        "pk": keys.post_aggregate_pk(post_id),
                        "sk": keys.TOTAL_SK,
                        "gpk": pk,
                        "owner": artist,
                        **mix.counters(max(1, lifetime)),
                    }
                )
            writer.put_items(items)
            # The registry's post counter, as PostDirectory.register keeps it (+1 per post).
            from chalicelib.storage.ports import CounterUpdate

            services.aggregates.add_counters(
                [CounterUpdate(*keys.artist_posts_key(artist), add={"posts": count})]
            )
            counter.reset()
            stats = services.stats.artist_stats(ADMIN, artist, params)
            reads = counter.reset()
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
        composition = item_composition(sizes[POST_VIEWS[-1]])
        print(
            f"  where a {POST_VIEWS[-1]:,}-view post's D# item's bytes go: "
            + ", ".join(f"{name} {kb:.1f} KB" for name, kb in composition.items())
        )
        results["d_item_kb_by_dimension"] = composition
        post_items = {r["items"] for r in results["post_stats"].values()}
        artist = results["artist_stats"]
        print(
            f"\nPostStats items per request: {sorted(post_items)} (goal <= {GOAL_ITEMS}); "
            f"RRU(EC) {[r['rru_eventually_consistent'] for r in results['post_stats'].values()]} "
            f"(goal <= {GOAL_RRU})"
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


def item_composition(item: dict[str, Any]) -> dict[str, float]:
    """KB of one Day item by breakdown dimension (all four measures together)."""
    from chalicelib.stats.counters import split_name
    from chalicelib.storage import codec

    out: Counter[str] = Counter()
    for name, value in item.items():
        split = split_name(name)
        out[f"by {split[1]}" if split else "other"] += codec.item_size({name: value})
    names = {
        "by c": "country",
        "by r": "referrer",
        "by h": "hour",
        "by ch": "channel",
        "by d": "device",
        "by s": "source",
        "by po": "play order",
        "other": "totals+meta",
    }
    return {names.get(k, k): round(n / 1024, 1) for k, n in out.most_common()}


def _plain_size(item: dict[str, Any]) -> int:
    from chalicelib.storage import codec

    return codec.item_size(item)


if __name__ == "__main__":
    sys.exit(main())
