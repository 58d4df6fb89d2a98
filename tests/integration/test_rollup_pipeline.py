"""The rollup end to end: a 3-Day replay through the real recorder, the stream pump,
``aggregate`` (failing part-way on about 10 % of batches, retried as Lambda retries) and
``close_days``; every closed Day (read back from its series row and level-0 piece), every
block its target's activity says exists, and every TOTAL must equal the truth computed from
the trace (``vtsops.replay.compare``), a second close must change nothing, and live counts
of the open Day are never below the truth.

Two runs of the same scenario:

* **moto** (server mode, HTTP): 3,000 looks on 20 posts, a pump every 12 hours of trace
  time, one batch in three failing. moto spends ~2 ms per stream record, ~8 ms per item a Query returns (its
  response serializer) and ~1 ms per term of an UpdateItem expression, so 50,000 looks on
  moto take 8+ minutes: ``VTS_FULL_REPLAY=1`` runs that size (and one batch in ten failing).
* **memory**: 52,000 looks through the same handlers over the in-memory adapters (which
  pass the same contract tests as the DynamoDB ones), in Lambda's stream event shape.

Raw events go in with BatchWriteItem on moto (``BulkEventStore``; moto takes ~375 single
writes/s) and the registry (posts, rate-limit slots) is the in-memory one; the recorder,
the pump, the stream handler and the close are the real ones.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest
from vtsops.replay import (
    BulkEventStore,
    MemoryPump,
    MemoryStream,
    Replayer,
    TraceLook,
    compare,
    generate_trace,
    ground_truth,
    live_below_truth,
)
from vtsops.trigger_rollup import CloseScheduler, StreamPump

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.days import day_of
from chalicelib.errors import StorageUnavailable
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore
from chalicelib.storage.memory import MemoryRegistry
from chalicelib.storage.ports import AggregateStore, CounterUpdate
from chalicelib.wiring import Services, dynamodb_services, memory_services, use

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class FlakyAggregates:
    """The real store, failing part-way through some batches' counter writes (as a
    throttled DynamoDB would: some updates in, then an error), or all of them in an outage."""

    def __init__(self, inner: AggregateStore, seed: int, every: int = 10) -> None:
        self._inner = inner
        self._rng = random.Random(seed)
        self._every = every
        self._calls = 0
        self.outage = False
        self.injected = 0

    def add_counters(self, updates: Iterable[CounterUpdate]) -> list[tuple[CounterUpdate, str]]:
        updates = list(updates)
        # A batch's first counter call is its Day updates: fail one batch in `every`.
        days = bool(updates) and updates[0].sk.startswith("D#")
        if days:
            self._calls += 1
        if days and (self.outage or self._calls % self._every == 0):
            self.injected += 1
            cut = self._rng.randrange(1, len(updates) + 1)
            self._inner.add_counters(updates[:cut])
            raise StorageUnavailable("injected: throttled part-way through a batch")
        return self._inner.add_counters(updates)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def scan(store: Any) -> dict[tuple[str, str], Any]:
    """Every item of the aggregates table (a full dump, to compare two closes)."""
    if isinstance(store, MemoryAggregateStore):
        return {key: dict(item) for key, item in store.items.items()}
    client, table = store._client, store._table
    items = {}
    for page in client.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            items[(item["pk"]["S"], item["sk"]["S"])] = item
    return items


def run_scenario(
    services: Services,
    flaky: FlakyAggregates,
    looks: int,
    pump_once: Callable[[], Any],
    bulk: BulkEventStore | None,
    pump_every_h: int = 3,
    posts: int = 40,
) -> None:
    trace = generate_trace(looks=looks, days=3, posts=posts, artists=posts // 5, seed=11)
    truth = ground_truth(trace)
    services.clock = FixedClock(trace.looks[0].at)
    services.registry = MemoryRegistry()
    scheduler = CloseScheduler()
    checks: list[str] = []
    outage_at = trace.looks[0].at + timedelta(hours=36)

    def on_pump(at: datetime, so_far: list[TraceLook]) -> None:
        if at == outage_at:
            flaky.outage = True  # the next cycle fails on every batch
            return
        if flaky.outage:
            stuck = pump_once()  # still down: nothing gets through
            assert stuck.failures > 0 and stuck.records == 0
            hit = day_of(outage_at)  # the Day whose looks are stuck in the stream
            assert live_below_truth(flaky, so_far, hit) != []
            flaky.outage = False
            pump_once()  # one cycle once the failure clears
            assert live_below_truth(flaky, so_far, hit) == []
            assert live_below_truth(flaky, so_far, day_of(at)) == []
            checks.append(f"caught up at {at}")
        elif at.hour % 12 == 0:
            assert live_below_truth(flaky, so_far, day_of(at)) == []
            checks.append(f"live >= truth at {at}")

    with use(services):
        stats = Replayer(
            services,
            trace,
            pump=pump_once,
            close=scheduler.run_once,
            bulk=bulk,
            pump_every_s=pump_every_h * 3600,
            on_pump=on_pump,
        ).run()

        assert stats.looks == looks and stats.outcomes["counted"] == truth.views
        assert flaky.injected >= 3 and len(checks) >= 4
        assert services.aggregate_items.get_watermark() == trace.days[-1]
        assert compare(services.aggregate_items, truth, trace.days) == []
        assert services.drop_store.get_drops(trace.days) == dict(truth.drops)
        # Lifetime totals: exact once every Day is closed.
        site = services.aggregate_items.get_items([("SITE", "TOTAL")])[("SITE", "TOTAL")]
        assert site["v"] == truth.views

        before = scan(flaky._inner)
        again = scheduler.run_once()
        assert again["closed_days"] == [] and again["writes"] == 0
        forced = services.day_closer.close_day(trace.days[1], services.clock.now())
        assert forced is None
        assert scan(flaky._inner) == before


def test_a_replay_on_moto_with_failing_batches_closes_every_day_exactly(
    aws_env: Settings,
) -> None:
    full = bool(os.environ.get("VTS_FULL_REPLAY"))
    services = dynamodb_services(aws_env)
    # Fewer, fuller batches on moto (its UpdateItem parser is slow): one in three fails.
    flaky = FlakyAggregates(services.aggregate_items, seed=3, every=10 if full else 3)
    services.aggregate_items = flaky  # type: ignore[assignment]
    bulk = BulkEventStore(services.client, aws_env.events_table, aws_env.event_ttl_days)
    pump = StreamPump(aws_env, batch_size=10_000, retries_per_cycle=2)
    looks, every_h, posts = (52_000, 3, 40) if full else (3_000, 12, 20)
    run_scenario(services, flaky, looks, pump.pump_once, bulk, every_h, posts)
    assert pump.totals.failures >= flaky.injected


def test_a_52k_replay_with_failing_batches_closes_every_day_exactly() -> None:
    services = memory_services(Settings(visitor_key="replay-key", drop_flush_s=0))
    flaky = FlakyAggregates(services.aggregate_items, seed=3)
    services.aggregate_items = flaky  # type: ignore[assignment]
    stream = MemoryStream(services.events)
    services.events = stream  # type: ignore[assignment]
    from app import aggregate

    pump = MemoryPump(stream, aggregate, batch_size=10_000, retries_per_cycle=5)
    run_scenario(services, flaky, 52_000, pump.pump_once, None)
    assert pump.totals.failures >= flaky.injected and len(stream.records) > 40_000
