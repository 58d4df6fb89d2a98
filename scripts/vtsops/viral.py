"""A viral post, simulated: the real web recorders (each container with its own post cache),
the real stream handler fed in Lambda's batches, and the real close, over the in-memory
adapters behind a model of DynamoDB's per-partition-key limits (bench/bench_viral.py,
tests/unit/test_viral.py; docs/adr/0016-write-shards.md).

The model (``KeyLimits``): every request is priced by DynamoDB's rules from its item's size
(``codec.item_size``): a write 1 unit per started KB (an update: the larger of the item
before and after; a refused conditional write is charged too), a read 0.5 unit per started
4 KB (eventually consistent; a Query sums its items). Units are counted per partition key
and simulated second; a request that would take a key past ``wcu_per_key`` write units or
``rcu_per_key`` read units in its second is refused with what the DynamoDB adapter raises
for throttling (``StorageThrottled``) and consumes nothing. No burst or adaptive capacity.

Time is a ``FixedClock`` moved look by look. The hot post's traffic ramps from
``start_per_s``, doubling every ``doubling_s``, to ``peak_per_s``; beside it, ``other_per_s``
looks fall on ``other_posts`` ordinary posts. A look is a new Visitor (its own IPv4
address) or, with ``repeat_share``, a Visitor who looked at that post before. Looks go round
robin to ``containers`` recorders, each with its own ``PostDirectory`` (cache
``post_cache_s``) and its own memory of confirmed Views. Stored looks enter a stream that
hands the aggregator a batch when it holds ``batch_size`` records or its first record has
waited ``window_s`` (infra/functions/aggregate.yaml), in Lambda's record shape. At the end
the Day is closed and compared with the truth.
"""

from __future__ import annotations

import gc
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.counts import Target
from chalicelib.drops import DropCounter
from chalicelib.errors import StorageThrottled, StorageUnavailable
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.ingest.web import WebHit, WebRecorder
from chalicelib.known import KnownViews
from chalicelib.model import HotMark, PostRecord, ViewEvent
from chalicelib.netcap import Caps, NetCaps
from chalicelib.registry.posts import PostDirectory
from chalicelib.storage import codec, keys
from chalicelib.storage.aggregates.items_memory import MemoryAggregateStore
from chalicelib.storage.memory import MemoryDropStore, MemoryEventStore, MemoryRegistry
from chalicelib.storage.ports import CounterUpdate
from chalicelib.wiring import Services, memory_services
from vtsops.units import eventual_read_units as rru
from vtsops.units import size_of
from vtsops.units import write_units as wru

QUERY_PAGE = 1024 * 1024  # a Query answers at most 1 MB a page
START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
DAY = "2026-11-24"
HOT_POST = 1
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Scenario:
    """One run. ``hot_shards`` 0: no write shards at all (today's single key per Day);
    ``hot_views_per_s`` 0: never marked hot (only the throttle fallback shards)."""

    minutes: float = 10.0
    peak_per_s: int = 3_000
    start_per_s: float = 10.0
    doubling_s: float = 20.0
    other_per_s: float = 20.0
    other_posts: int = 100
    repeat_share: float = 0.1
    containers: int = 16
    post_cache_s: int = 60
    hot_views_per_s: int = 50
    hot_shards: int = 10
    wcu_per_key: int = 1_000
    rcu_per_key: int = 3_000
    batch_size: int = 1_000
    window_s: float = 10.0
    # The close reads a key's Query pages one after another, each taking this long.
    page_s: float = 0.1
    seed: int = 7

    def hot_rate(self, second: float) -> float:
        return min(float(self.peak_per_s), self.start_per_s * 2 ** (second / self.doubling_s))


class KeyLimits:
    """Units per partition key in the current simulated second (module docstring)."""

    def __init__(self, clock: FixedClock, wcu_per_key: int, rcu_per_key: int) -> None:
        self._clock = clock
        self._limits = {"w": float(wcu_per_key), "r": float(rcu_per_key)}
        self._second = -1
        self._used: dict[str, Counter[str]] = {"w": Counter(), "r": Counter()}
        self.peak: dict[str, tuple[float, str]] = {"w": (0.0, ""), "r": (0.0, "")}
        self.throttled: dict[str, Counter[str]] = {"w": Counter(), "r": Counter()}
        self.units: Counter[str] = Counter()

    def write(self, pk: str, units: float, *, check: bool = True) -> None:
        """Take ``units`` write units on ``pk`` now; ``check`` False: charge them whatever
        the limit (what an update that was let through turned out to cost more)."""
        self._take("w", pk, units, check)

    def read(self, pk: str, units: float) -> None:
        self._take("r", pk, units, True)

    def _take(self, kind: str, pk: str, units: float, check: bool) -> None:
        second = int(self._clock.at.timestamp())
        if second != self._second:
            self._second = second
            self._used = {"w": Counter(), "r": Counter()}
        used = self._used[kind][pk] + units
        if check and used > self._limits[kind]:
            self.throttled[kind][pk] += 1
            what = "ProvisionedThroughputExceededException"
            raise StorageThrottled(f"DynamoDB answered {what} (model: {pk})")
        self._used[kind][pk] = used
        self.units[kind] += units
        if used > self.peak[kind][0]:
            self.peak[kind] = (used, pk)


class Stream:
    """The events table's stream: INSERT records in Lambda's shape, handed out in batches as
    the event source mapping does (``batch_size`` records, or ``window_s`` waited)."""

    def __init__(self, clock: FixedClock, batch_size: int, window_s: float) -> None:
        self._clock = clock
        self._batch_size = batch_size
        self._window = timedelta(seconds=window_s)
        self._pending: list[tuple[datetime, dict[str, Any]]] = []  # (arrived, record)
        self._seq = 0

    def add(self, item: dict[str, Any], size: int) -> None:
        self._seq += 1
        typed = _typed(item)
        record = {
            "eventID": f"viral-{self._seq}",
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": int(self._clock.at.timestamp()),
                "Keys": {"pk": typed["pk"], "sk": typed["sk"]},
                "NewImage": typed,
                "SequenceNumber": str(10**20 + self._seq),
                "SizeBytes": size,
                "StreamViewType": "NEW_IMAGE",
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/viral/stream/x",
        }
        self._pending.append((self._clock.at, record))

    def due(self, force: bool = False) -> list[dict[str, Any]] | None:
        """The next batch if the mapping would send one now (``force``: whatever is left)."""
        if not self._pending:
            return None
        waited = self._clock.at - self._pending[0][0] >= self._window
        if not (force or waited or len(self._pending) >= self._batch_size):
            return None
        return [record for _, record in self._pending[: self._batch_size]]

    def done(self, n: int) -> None:
        """The handler took the first ``n`` records of the batch."""
        del self._pending[:n]


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    """An event item in DynamoDB's typed JSON, as the stream carries it: ``codec.to_typed``
    for the strings, numbers and booleans an event item holds, at a fraction of its cost."""
    typed: dict[str, Any] = {}
    for name, value in item.items():
        if isinstance(value, bool):
            typed[name] = {"BOOL": value}
        elif isinstance(value, int):
            typed[name] = {"N": str(value)}
        elif isinstance(value, str):
            typed[name] = {"S": value}
        else:
            typed[name] = codec.to_typed({name: value})[name]
    return typed


class LimitedEvents(MemoryEventStore):
    """The in-memory events table behind the per-key limits, feeding the ``Stream``."""

    def __init__(self, limits: KeyLimits, stream: Stream, clock: FixedClock, page_s: float) -> None:
        super().__init__()
        self._limits = limits
        self._stream = stream
        self._clock = clock
        self._page_s = page_s
        self.bytes_by_pk: Counter[str] = Counter()

    def _keep(self, item: dict[str, Any], *, only_new: bool) -> bool:
        size = codec.item_size(item)
        self._limits.write(item["pk"], wru(size))  # refused before it is written
        if not super()._keep(item, only_new=only_new):
            return False
        self.bytes_by_pk[item["pk"]] += size
        self._stream.add(item, size)
        return True

    def day_events(self, post_id: int, day: str, shard: int | None = None) -> Iterator[ViewEvent]:
        """One key's items, paid page by page (each page ``page_s`` of simulated time)."""
        pk = keys.event_pk(post_id, day, shard)
        left = self.bytes_by_pk[pk]
        while True:
            page = min(left, QUERY_PAGE)
            self._limits.read(pk, rru(page))
            self._clock.advance(self._page_s)
            left -= page
            if left <= 0:
                break
        return super().day_events(post_id, day, shard)


class LimitedRegistry(MemoryRegistry):
    """Posts (with hot marks) and rate slots behind the per-key limits."""

    def __init__(self, limits: KeyLimits) -> None:
        super().__init__()
        self._limits = limits

    def get_posts_with_hot(self, post_ids: Iterable[int]) -> dict[int, PostRecord]:
        ids = list(post_ids)
        for post_id in ids:
            self._limits.read(keys.post_key(post_id)[0], 2 * rru(1))  # META and HOT
        return super().get_posts_with_hot(ids)

    def mark_hot(self, post_id: int, mark: HotMark) -> None:
        self._limits.write(keys.hot_key(post_id)[0], 1)
        super().mark_hot(post_id, mark)

    def take_slot(self, scope: str, subject: str, *args: Any, **kwargs: Any) -> float | None:
        self._limits.write(keys.rate_key(scope, subject)[0], 1)
        return super().take_slot(scope, subject, *args, **kwargs)


class LimitedAggregates(MemoryAggregateStore):
    """The aggregates table behind the per-key limits (live counters, markers, the close)."""

    def __init__(self, limits: KeyLimits) -> None:
        super().__init__()
        self._limits = limits

    def add_counters(self, updates: Iterable[CounterUpdate]) -> list[tuple[CounterUpdate, str]]:
        refused: list[tuple[CounterUpdate, str]] = []
        for update in updates:
            key = (update.pk, update.sk)
            before = size_of(self.items.get(key))
            self._limits.write(update.pk, wru(before))
            refused += super().add_counters([update])
            grown = wru(max(before, size_of(self.items.get(key)))) - wru(before)
            if grown:
                self._limits.write(update.pk, grown, check=False)
        return refused

    def put_items(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            before = size_of(self.items.get((item["pk"], item["sk"])))
            self._limits.write(item["pk"], wru(max(before, size_of(item))))
            super().put_items([item])

    def put_if(self, item: dict[str, Any], attribute: str, expected: Any) -> bool:
        before = size_of(self.items.get((item["pk"], item["sk"])))
        self._limits.write(item["pk"], wru(max(before, size_of(item))))
        return super().put_if(item, attribute, expected)

    def get_items(self, keys_: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        wanted = set(keys_)
        for pk, sk in wanted:
            self._limits.read(pk, rru(size_of(self.items.get((pk, sk)))))
        return super().get_items(wanted)

    def query_range(self, pk: str, first_sk: str, last_sk: str) -> list[dict[str, Any]]:
        found = super().query_range(pk, first_sk, last_sk)
        self._limits.read(pk, rru(sum(size_of(item) for item in found)))
        return found


@dataclass
class PostFigures:
    """One post's (or a group's) Views: the truth and what VTS made of it."""

    attempted: int = 0  # distinct (Visitor, post) among every look sent
    counted: int = 0  # distinct (Visitor, post) among looks answered 201
    closed: int = 0  # the closed Day's Views
    live: int = 0  # the open Day's live counter, before the close


@dataclass
class ViralResult:
    scenario: Scenario
    looks: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # 201, 204, 503
    throttled_writes: Counter[str] = field(default_factory=Counter)  # by pk
    throttled_reads: Counter[str] = field(default_factory=Counter)
    peak_wcu: tuple[float, str] = (0.0, "")
    peak_rcu: tuple[float, str] = (0.0, "")
    hot: PostFigures = field(default_factory=PostFigures)
    others: PostFigures = field(default_factory=PostFigures)
    others_exact: int = 0  # ordinary posts whose closed Views equal their truth
    hot_marked_at_s: float | None = None  # when the stream handler marked the post hot
    batches: int = 0
    failed_batches: int = 0
    shard_keys: int = 0  # the hot post's keys the close read (base included)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def throttled(self) -> int:
        return sum(self.throttled_writes.values())


def services_for(
    scenario: Scenario, clock: FixedClock, limits: KeyLimits, stream: Stream
) -> Services:
    settings = Settings(
        jwt_secret="viral-" * 8,
        visitor_key="viral-visitor-key",
        post_cache_s=scenario.post_cache_s,
        hot_views_per_s=scenario.hot_views_per_s,
        hot_shards=scenario.hot_shards,
        drop_flush_s=60,
    )
    services = memory_services(settings, clock=clock)
    services.events = LimitedEvents(limits, stream, clock, scenario.page_s)
    services.registry = LimitedRegistry(limits)
    services.aggregate_items = LimitedAggregates(limits)
    services.drop_store = MemoryDropStore()
    return services


def recorders(services: Services, scenario: Scenario, clock: FixedClock) -> list[WebRecorder]:
    """One web recorder per container, each with its own post cache and memories."""

    def monotonic() -> float:
        return (clock.at - START).total_seconds()

    out = []
    settings = services.settings
    for _ in range(scenario.containers):
        posts = PostDirectory(
            services.registry,
            clock,
            settings.post_cache_s,
            monotonic=monotonic,
            hot_shards=settings.hot_shards,
        )
        out.append(
            WebRecorder(
                events=services.events,
                registry=services.registry,
                posts=posts,
                drops=DropCounter(services.drop_store, clock, settings.drop_flush_s),
                clock=clock,
                classify=_classify,
                country=lambda _ip: None,
                visitor_key=settings.visitor_key,
                impression_interval_s=settings.impression_interval_s,
                known_views=KnownViews(),
                net_caps=NetCaps(Caps(settings.net_views, settings.net_impressions)),
            )
        )
    return out


def _classify(user_agent: str | None) -> str:
    from chalicelib.enrich.device import classify

    return classify(user_agent)


def _ip(visitor: int) -> str:
    return f"10.{visitor >> 16 & 255}.{visitor >> 8 & 255}.{visitor & 255}"


def simulate(
    scenario: Scenario, progress: Callable[[int, ViralResult], None] | None = None
) -> ViralResult:
    """Run ``scenario`` (module docstring); ``progress`` is called after each simulated
    second with its number."""
    try:
        return _simulate(scenario, progress)
    finally:
        gc.unfreeze()


def _simulate(
    scenario: Scenario, progress: Callable[[int, ViralResult], None] | None
) -> ViralResult:
    rng = random.Random(scenario.seed)
    clock = FixedClock(START)
    limits = KeyLimits(clock, scenario.wcu_per_key, scenario.rcu_per_key)
    stream = Stream(clock, scenario.batch_size, scenario.window_s)
    services = services_for(scenario, clock, limits, stream)
    registry = services.registry
    assert isinstance(registry, LimitedRegistry)
    posts = [HOT_POST, *range(2, 2 + scenario.other_posts)]
    for post_id in posts:
        MemoryRegistry.put_post(registry, PostRecord(post_id, f"artist-{post_id % 10}", START))
    containers = recorders(services, scenario, clock)
    aggregator = services.aggregator
    result = ViralResult(scenario)
    request = RecordViewRequest()
    seen: dict[int, list[int]] = {post_id: [] for post_id in posts}
    attempted: set[tuple[int, int]] = set()
    counted: set[tuple[int, int]] = set()
    visitors = 0
    hot_carry = other_carry = 0.0
    started = time.perf_counter()

    def pump(force: bool = False) -> None:
        retries = 0
        while (batch := stream.due(force)) is not None and retries < 5:
            answer = aggregator.handle({"Records": batch})
            result.batches += 1
            if answer.get("batchItemFailures"):
                # Lambda sends the batch again (the handler answers its first record).
                result.failed_batches += 1
                retries += 1
                if not force:
                    return
                continue
            stream.done(len(batch))
            if result.hot_marked_at_s is None and HOT_POST in registry.hot:
                result.hot_marked_at_s = (clock.at - START).total_seconds()

    for second in range(int(scenario.minutes * 60)):
        hot_carry += scenario.hot_rate(second)
        other_carry += scenario.other_per_s
        n_hot, n_other = int(hot_carry), int(other_carry)
        hot_carry -= n_hot
        other_carry -= n_other
        looks = [(i / n_hot, HOT_POST) for i in range(n_hot)]
        looks += [(rng.random(), rng.choice(posts[1:])) for _ in range(n_other)]
        looks.sort()
        base = START + timedelta(seconds=second)
        for offset, post_id in looks:
            clock.at = base + timedelta(seconds=offset)
            earlier = seen[post_id]
            if earlier and rng.random() < scenario.repeat_share:
                visitor = earlier[rng.randrange(len(earlier))]
            else:
                visitors += 1
                visitor = visitors
                earlier.append(visitor)
            pair = (post_id, visitor)
            attempted.add(pair)
            recorder = containers[result.looks % len(containers)]
            result.looks += 1
            hit = WebHit(post_id, request, BROWSER, None, _ip(visitor), None)
            try:
                outcome = recorder.record(hit)
            except StorageUnavailable:
                result.answers["503"] += 1
            else:
                result.answers["201" if outcome.counted else "204"] += 1
                if outcome.counted:
                    counted.add(pair)
            pump()
        # What lived through a simulated second (stored looks, caches) stays out of the cyclic
        # collector's full passes, which would rescan millions of items: at full size, a
        # third of the runtime.
        gc.freeze()
        if progress is not None:
            progress(second, result)
    clock.at = START + timedelta(seconds=scenario.minutes * 60 + scenario.window_s)
    pump(force=True)
    result.seconds["traffic"] = time.perf_counter() - started

    aggregates = services.aggregates
    day_key = [(f"P#{post_id}", f"D#{DAY}") for post_id in posts]
    live = services.aggregate_items.get_items(day_key)
    started = time.perf_counter()
    clock.at = START.replace(hour=0) + timedelta(days=1, hours=2)
    active = aggregates.active_posts(DAY)
    result.shard_keys = 1 + len(active.get(HOT_POST, []))
    services.day_closer.close_day(DAY, clock.at)
    result.seconds["close"] = time.perf_counter() - started

    attempted_by = Counter(post_id for post_id, _ in attempted)
    counted_by = Counter(post_id for post_id, _ in counted)
    for post_id in posts:
        figures = result.hot if post_id == HOT_POST else result.others
        truth_attempted, truth_counted = attempted_by[post_id], counted_by[post_id]
        closed = (aggregates.closed_day(Target.post(post_id), DAY) or {}).get("v", 0)
        figures.attempted += truth_attempted
        figures.counted += truth_counted
        figures.closed += int(closed)
        figures.live += int(live.get((f"P#{post_id}", f"D#{DAY}"), {}).get("v", 0))
        if post_id != HOT_POST and closed == truth_counted:
            result.others_exact += 1
    result.throttled_writes = limits.throttled["w"]
    result.throttled_reads = limits.throttled["r"]
    result.peak_wcu, result.peak_rcu = limits.peak["w"], limits.peak["r"]
    return result
