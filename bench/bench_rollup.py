#!/usr/bin/env python3
"""DynamoDB write units per recorded look, all in, and the daily close's throughput.

A replay trace (scripts/vtsops/replay.py: Zipf posts, a day curve, device and country
mixes, bots, repeats, signed-in Visitors, Impressions, 3 Days) goes through the real web
recorder, the real ``aggregate`` handler (fed by the in-memory stream in Lambda's event
shape) and the real close, over the in-memory adapters wrapped in a meter. The meter
prices every request by DynamoDB's rules from item sizes (moto's ConsumedCapacity is a
placeholder):

* a write costs 1 WRU per started KB of the item, for an update or an overwrite the larger
  of the item before and after; a failed conditional write is charged all the same;
* the ``by_views`` index costs 1 WRU to add an entry and 1 to remove one (a change of a
  post RANK's ``v`` costs 2 more, a change of its projected row 1);
* reads cost 0.5 RRU per started 4 KB (eventually consistent; Query sums its items).

How much the live path costs per look depends on how many looks share a stream batch
(one update per touched item per batch), so the figures are given for several batch
windows: pumping every W seconds of this trace fills batches as the deployed 10 s window
does at W/10 times its traffic. The close costs the same whatever the batching.

The close's throughput is measured twice: over the in-memory adapters (the code's own
cost) and over moto in server mode on 127.0.0.1 (harness-bound: moto takes a few hundred
requests a second; never a DynamoDB figure).

Usage: python bench/bench_rollup.py [--looks N] [--posts N] [--artists N] [--seed N] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from vtsops.replay import MemoryPump, MemoryStream, Replayer, Trace, generate_trace  # noqa: E402
from vtsops.units import eventual_read_units as rru  # noqa: E402
from vtsops.units import size_of  # noqa: E402
from vtsops.units import write_units as wru  # noqa: E402

from chalicelib.clock import FixedClock  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.model import PostRecord, ViewEvent  # noqa: E402
from chalicelib.storage import codec  # noqa: E402
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore  # noqa: E402
from chalicelib.storage.memory import MemoryDropStore, MemoryEventStore, MemoryRegistry  # noqa: E402
from chalicelib.storage.ports import CounterUpdate  # noqa: E402
from chalicelib.wiring import Services, memory_services, use  # noqa: E402

GOAL_WRU_PER_LOOK = 1.5
# The stream mapping as deployed (infra/functions/aggregate.yaml).
DEPLOYED_BATCH = 1_000
DEPLOYED_WINDOW_S = 10
Key = tuple[str, str]


# ---- the meter ----------------------------------------------------------------------------


def kind_of(pk: str, sk: str) -> str:
    if pk.startswith("DAY#"):
        return "marker"
    if sk.startswith("D#"):
        return {"P": "post-day", "A": "artist-day", "S": "site-day", "D": "drops"}[pk[0]]
    if sk == "TOTAL":
        return "total"
    if sk == "RANK":
        return "rank"
    if sk.startswith("S#"):
        return "series"
    if sk[:1] == "B" and sk[1:2].isdigit():
        return "piece" if sk.startswith("B0#") else "block"
    if pk == "PUMP":
        return "stream-state"
    if pk == "CLOSE":
        return "watermark"
    return "other"


class Meter:
    def __init__(self) -> None:
        self.phase = "record"
        self.wru: Counter[tuple[str, str]] = Counter()
        self.rru: Counter[tuple[str, str]] = Counter()
        self.requests: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    def write(self, kind: str, units: int) -> None:
        self.wru[(self.phase, kind)] += units

    def read(self, kind: str, units: float) -> None:
        self.rru[(self.phase, kind)] += units

    def total_wru(self, phase: str | None = None) -> int:
        return sum(n for (p, _), n in self.wru.items() if phase is None or p == phase)

    def by_kind(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (phase, kind), n in self.wru.items():
            out[f"{phase}:{kind}"] += n
        return dict(sorted(out.items()))

    def in_phase(self, phase: str, work: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            previous, self.phase = self.phase, phase
            started = time.perf_counter()
            try:
                return work()
            finally:
                self.seconds[phase] += time.perf_counter() - started
                self.phase = previous

        return run


def index_writes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> int:
    """The by_views entries written for one change of an item (tiny entries: the key and
    the projected row attributes). A moved key costs a delete and a put; a changed row, one
    put."""
    from chalicelib.storage.tables import RANK_ROW_ATTRIBUTES

    def entry(item: dict[str, Any] | None) -> tuple[Any, Any] | None:
        if item and item.get("gpk") and isinstance(item.get("v"), int):
            return item["gpk"], item["v"]
        return None

    def row(item: dict[str, Any] | None) -> tuple[Any, ...]:
        return tuple((item or {}).get(k) for k in RANK_ROW_ATTRIBUTES)

    before, after = entry(old), entry(new)
    if before == after:
        return 1 if after is not None and row(old) != row(new) else 0
    return (before is not None) + (after is not None)


class MeteredAggregates:
    """The in-memory AggregateStore, priced per request."""

    def __init__(self, meter: Meter) -> None:
        self.inner = MemoryAggregateStore()
        self.meter = meter

    def _peek(self, key: Key) -> dict[str, Any] | None:
        item = self.inner.items.get(key)
        return copy.copy(item) if item is not None else None

    def _charge_write(
        self, key: Key, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        self.meter.write(kind_of(*key), wru(max(size_of(old), size_of(new))))
        # The by_views index holds every item with gpk and v: RANK items.
        self.meter.write("by_views-index", index_writes(old, new))

    def add_counters(self, updates: Iterable[CounterUpdate]) -> list[tuple[CounterUpdate, str]]:
        updates = list(updates)
        before = {(u.pk, u.sk): self._peek((u.pk, u.sk)) for u in updates}
        refused = self.inner.add_counters(updates)
        self.meter.requests["UpdateItem"] += len(updates)
        for update in updates:
            key = (update.pk, update.sk)
            self._charge_write(key, before[key], self._peek(key))
        return refused

    def put_items(self, items: Iterable[dict[str, Any]]) -> None:
        items = list(items)
        before = {(i["pk"], i["sk"]): self._peek((i["pk"], i["sk"])) for i in items}
        self.inner.put_items(items)
        self.meter.requests["BatchWriteItem"] += math.ceil(len(items) / 25)
        for item in items:
            key = (item["pk"], item["sk"])
            self._charge_write(key, before[key], item)

    def put_if(self, item: dict[str, Any], attribute: str, expected: Any) -> bool:
        key = (item["pk"], item["sk"])
        old = self._peek(key)
        done = self.inner.put_if(item, attribute, expected)
        self.meter.requests["PutItem"] += 1
        self._charge_write(key, old, item if done else old)
        return done

    def get_items(self, keys_: Iterable[Key]) -> dict[Key, dict[str, Any]]:
        wanted = sorted(set(keys_))
        found = self.inner.get_items(wanted)
        self.meter.requests["BatchGetItem"] += math.ceil(len(wanted) / 100)
        for key in wanted:
            self.meter.read(kind_of(*key), rru(size_of(found.get(key))))
        return found

    def query_range(self, pk: str, first_sk: str, last_sk: str) -> list[dict[str, Any]]:
        found = self.inner.query_range(pk, first_sk, last_sk)
        self.meter.requests["Query"] += 1
        self.meter.read(kind_of(pk, first_sk), rru(sum(size_of(i) for i in found)))
        return found

    def query_artist_posts(self, artist_id: str, limit: int, cursor: str | None) -> Any:
        return self.inner.query_artist_posts(artist_id, limit, cursor)

    def get_watermark(self) -> str | None:
        self.meter.requests["GetItem"] += 1
        self.meter.read("watermark", 0.5)
        return self.inner.get_watermark()

    def advance_watermark(self, day: str) -> bool:
        self.meter.requests["UpdateItem"] += 1
        self.meter.write("watermark", 1)
        return self.inner.advance_watermark(day)


class MeteredEvents:
    """The raw events table: one conditional put per View (charged when it fails too)."""

    def __init__(self, meter: Meter, ttl_days: int) -> None:
        self.inner = MemoryEventStore(ttl_days)
        self.meter = meter
        self.ttl_days = ttl_days

    def put_view(self, event: ViewEvent) -> bool:
        self.meter.write("raw-event", wru(size_of(codec.event_item(event, self.ttl_days))))
        return self.inner.put_view(event)

    def put_impression(self, event: ViewEvent) -> None:
        self.meter.write("raw-event", wru(size_of(codec.event_item(event, self.ttl_days))))
        self.inner.put_impression(event)

    def day_events(self, post_id: int, day: str, shard: int | None = None) -> Iterator[ViewEvent]:
        found = list(self.inner.day_events(post_id, day, shard))
        sizes = sum(size_of(codec.event_item(e, self.ttl_days)) for e in found)
        self.meter.read("raw-event", rru(sizes))
        return iter(found)


class MeteredDrops(MemoryDropStore):
    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter

    def add_drops(self, day: str, counts: Any) -> None:
        self.meter.write("drops", 1)
        super().add_drops(day, counts)


class MeteredRegistry(MemoryRegistry):
    """Posts and the Impression rate limit: the recording side, shown apart."""

    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter

    def take_slot(self, *args: Any, **kwargs: Any) -> float | None:
        self.meter.write("rate-limit", 1)
        return super().take_slot(*args, **kwargs)

    def get_post(self, post_id: int) -> PostRecord | None:
        self.meter.read("registry", 0.5)
        return super().get_post(post_id)

    def get_posts_with_hot(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        """The recorders' read: each post's META and HOT items (0.5 RRU each, eventually
        consistent, one BatchGetItem)."""
        wanted = list(post_ids)
        self.meter.read("registry", 1.0 * len(wanted))
        return super().get_posts_with_hot(wanted)


# ---- one scenario -------------------------------------------------------------------------


def all_in(result: dict[str, Any]) -> int:
    """Raw event writes + everything the stream handler and the close write."""
    phase = result["wru_by_phase"]
    return int(
        result["wru_by_kind"].get("record:raw-event", 0) + phase["aggregate"] + phase["close"]
    )


def metered_services(
    trace: Trace, meter: Meter, settings: Settings
) -> tuple[Services, MemoryStream]:
    """In-memory services whose every store is metered, and the events' stream; the
    trace's posts are registered beforehand (registration is not a recording cost)."""
    services = memory_services(settings, clock=FixedClock(trace.looks[0].at))
    services.aggregate_items = MeteredAggregates(meter)
    stream = MemoryStream(MeteredEvents(meter, settings.event_ttl_days))
    services.events = stream
    services.drop_store = MeteredDrops(meter)
    services.registry = MeteredRegistry(meter)
    for post_id, artist in trace.posts.items():
        MemoryRegistry.put_post(services.registry, PostRecord(post_id, artist, trace.looks[0].at))
    return services, stream


class HourlyClose:
    """The close as its schedule runs it: at most once per hour of the services' clock;
    ``runs`` are the instants it ran."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self.runs: list[datetime] = []

    def __call__(self) -> Any:
        now = self._services.clock.now()
        if self.runs and now - self.runs[-1] < timedelta(hours=1):
            return None
        self.runs.append(now)
        return self._services.day_closer.run(now)


def run_scenario(trace: Trace, window_s: float, batch_size: int) -> dict[str, Any]:
    """The trace through recorder -> stream (batched by ``window_s``) -> aggregate -> close."""
    from app import aggregate

    meter = Meter()
    settings = Settings(jwt_secret="bench-" * 8, visitor_key="bench-visitor-key")
    services, stream = metered_services(trace, meter, settings)
    pump = MemoryPump(stream, aggregate, batch_size=batch_size)
    hourly_close = HourlyClose(services)

    replayer = Replayer(
        services,
        trace,
        pump=meter.in_phase("aggregate", pump.pump_once),
        close=meter.in_phase("close", hourly_close),
        pump_every_s=window_s,
    )
    started = time.perf_counter()
    with use(services):
        replayer.register_posts = lambda: None  # type: ignore[method-assign]
        stats = replayer.run()
        # The last Day closes at the end of the run (the clock is 2 h past it).
        meter.in_phase("close", lambda: services.day_closer.run(services.clock.now()))()
    elapsed = time.perf_counter() - started
    stored = len(stream.records)
    views = sum(1 for r in stream.records if r["dynamodb"]["Keys"]["sk"]["S"].startswith("V#"))
    recounted = sum(
        sum(1 for _ in stream.inner.day_events(int(pk[2:]), day))
        for (pk, day) in {
            (str(i["pk"]), str(i["sk"])[2:])
            for i in services.aggregate_items.inner.items.values()
            if str(i["pk"]).startswith("P#") and str(i["sk"]).startswith("D#")
        }
    )
    return {
        "window_s": window_s,
        "batch_size": batch_size,
        "batches": pump.batches,
        "records_per_batch": round(stored / max(1, pump.batches), 1),
        "looks": stats.looks,
        "stored": stored,
        "views": views,
        "wru": meter.total_wru(),
        "wru_by_phase": {p: meter.total_wru(p) for p in ("record", "aggregate", "close")},
        "wru_by_kind": meter.by_kind(),
        "rru": round(sum(meter.rru.values()), 1),
        "close_s": round(meter.seconds["close"], 3),
        "recounted": recounted,
        "elapsed_s": round(elapsed, 1),
    }


# ---- the close over moto ------------------------------------------------------------------


def close_on_moto(looks: int, seed: int) -> dict[str, Any]:
    """Raw events of one Day into moto, pumped in big batches; then time one close."""
    from moto.server import ThreadedMotoServer
    from vtsops.replay import BulkEventStore
    from vtsops.stack import free_port
    from vtsops.trigger_rollup import StreamPump

    from chalicelib.storage.provision import ensure_tables
    from chalicelib.wiring import dynamodb_services

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        settings = Settings(
            dynamodb_endpoint=f"http://127.0.0.1:{port}",
            events_table=f"{prefix}-events",
            aggregates_table=f"{prefix}-aggregates",
            registry_table=f"{prefix}-registry",
            jwt_secret="bench-" * 8,
            visitor_key="bench-visitor-key",
        )
        trace = generate_trace(looks=looks, days=1, posts=300, artists=40, seed=seed)
        services = dynamodb_services(settings, clock=FixedClock(trace.looks[0].at))
        ensure_tables(services.client, settings.table_names())
        services.registry = MemoryRegistry()
        bulk = BulkEventStore(services.client, settings.events_table, settings.event_ttl_days)
        pump = StreamPump(settings, batch_size=10_000)
        with use(services):
            Replayer(services, trace, pump=pump.pump_once, bulk=bulk, pump_every_s=86_400).run()
            day = trace.days[0]
            services.aggregates.advance_watermark(
                (date.fromisoformat(day) - timedelta(days=1)).isoformat()
            )
            started = time.perf_counter()
            report = services.day_closer.run(services.clock.now())
            seconds = time.perf_counter() - started
        return {
            "events": report.events,
            "posts": report.posts,
            "writes": report.writes,
            "seconds": round(seconds, 2),
            "events_per_s": round(report.events / seconds),
        }
    finally:
        server.stop()


# ---- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The replay trace `vts replay` generates by default.
    parser.add_argument("--looks", type=int, default=50_000)
    parser.add_argument("--posts", type=int, default=150)
    parser.add_argument("--artists", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a small trace (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.looks = 10_000
    logging.disable(logging.WARNING)  # retries and moto's request log are not figures
    trace = generate_trace(
        looks=args.looks, days=3, posts=args.posts, artists=args.artists, seed=args.seed
    )
    rate = args.looks / (3 * 86_400)
    print(
        f"replay trace: {args.looks} looks over 3 Days ({rate:.2f} looks/s), "
        f"{args.posts} posts, {args.artists} artists, seed {args.seed}"
    )
    # The deployed stream mapping (infra/functions/aggregate.yaml) sends a batch when it holds
    # BatchSize records or has waited its window. Pumping this trace every W trace-seconds
    # fills batches the way the deployed window does at W/window times the trace's traffic.
    scenarios = [10, 600, 3_000, 6_000]
    results = []
    for window_s in scenarios:
        result = run_scenario(trace, window_s, DEPLOYED_BATCH)
        result["equivalent_looks_per_s"] = round(rate * window_s / DEPLOYED_WINDOW_S, 2)
        results.append(result)

    print(
        "\nWRU per stored look; all-in = raw write + live aggregate (markers included) + close;"
        f" goal <= {GOAL_WRU_PER_LOOK}.\nBatches as the deployed mapping makes them "
        f"(BatchSize {DEPLOYED_BATCH}, {DEPLOYED_WINDOW_S} s window) at the traffic shown:"
    )
    print(
        f"  {'traffic':>10} {'looks/batch':>11} {'all-in':>7} {'per View':>8} {'raw':>5} "
        f"{'live':>5} {'close':>6} {'guards':>7} {'+guards':>8}"
    )
    for r in results:
        r["all_in"] = all_in(r)
        stored = r["stored"]
        phase = r["wru_by_phase"]
        raw = r["wru_by_kind"].get("record:raw-event", 0)
        guards = phase["record"] - raw
        r["guards"] = guards
        print(
            f"  {r['equivalent_looks_per_s']:>6} /s {r['records_per_batch']:>11} "
            f"{r['all_in'] / stored:>7.2f} {r['all_in'] / r['views']:>8.2f} {raw / stored:>5.2f} "
            f"{phase['aggregate'] / stored:>5.2f} {phase['close'] / stored:>6.2f} "
            f"{guards / stored:>7.2f} {(r['all_in'] + guards) / stored:>8.2f}"
        )
    print(
        "  (guards: the recording side's rate-limit slots, retransmission markers and drop"
        " counters;\n   +guards: all-in with them. The first row is the trace at its own pace.)"
    )
    best = results[-1]
    print("\nwhere the units go (busiest batching), per stored look:")
    for name, n in best["wru_by_kind"].items():
        if n:
            print(f"  {name:<28} {n / best['stored']:.3f}")
    close_mem = best["recounted"] / best["close_s"] if best["close_s"] else 0.0
    print(
        f"\nlooks: {best['looks']} sent, {best['stored']} stored ({best['views']} Views); "
        f"recording-side extras (rate-limit slots, drop counters) are in record:*"
    )
    print(f"close over the in-memory adapters: {close_mem:,.0f} raw events/s recounted")
    sys.stdout.flush()
    moto = close_on_moto(5_000 if args.quick else 10_000, args.seed)
    print(
        f"close over moto (harness-bound): {moto['events']} events of {moto['posts']} posts "
        f"in {moto['seconds']} s = {moto['events_per_s']} events/s"
    )
    figures = {
        "looks": args.looks,
        "posts": args.posts,
        "scenarios": [
            {
                "looks_per_s": r["equivalent_looks_per_s"],
                "batch_size": r["batch_size"],
                "records_per_batch": r["records_per_batch"],
                "wru_per_look": round(r["all_in"] / r["stored"], 3),
                "wru_per_view": round(r["all_in"] / r["views"], 3),
                "live_wru_per_look": round(r["wru_by_phase"]["aggregate"] / r["stored"], 3),
                "close_wru_per_look": round(r["wru_by_phase"]["close"] / r["stored"], 3),
                "guard_wru_per_look": round(r["guards"] / r["stored"], 3),
            }
            for r in results
        ],
        "goal_wru_per_look": GOAL_WRU_PER_LOOK,
        "close_events_per_s_memory": round(close_mem),
        "close_events_per_s_moto": moto["events_per_s"],
    }
    print("BENCH " + json.dumps({"bench": "rollup", **figures}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
