"""Replaying realistic traffic through the real handlers, and the truth to check it against.

* ``generate_trace``: a seeded, realistic trace of web looks over several Days: Zipf post
  popularity (and one post going viral), a daily curve, device and country mixes, bots,
  repeat looks, signed-in Visitors, authors looking at their own posts, Impressions (some
  in bursts the rate limit refuses), the odd unknown post. ``Trace.to_jsonl`` /
  ``Trace.from_jsonl`` store one look per line.
* ``ground_truth``: what the closed Days must hold, computed straight from the trace by
  the rules of DESIGN.md (its own code, not the rollup's), to compare with ``compare``.
* ``Replayer``: feeds looks through the real ``WebRecorder`` with a ``FixedClock`` set to
  each look's time, pumping the stream and running ``close_days`` as trace time passes.
* ``BulkEventStore``: a test/bench-only EventStore that writes raw events with
  BatchWriteItem (moto takes ~375 single writes/s) and keeps the per-Day View dedup in
  memory; ``MemoryStream``/``MemoryPump``: the stream for in-memory benches.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import datasketches

from chalicelib.auth import Claims
from chalicelib.clock import FixedClock
from chalicelib.errors import NotFound, RateLimited
from chalicelib.ingest.schema import RecordViewRequest
from chalicelib.ingest.web import WebHit, WebRecorder
from chalicelib.model import PostRecord, ViewEvent
from chalicelib.storage import codec
from chalicelib.storage.aggregates import Aggregates, closed, layout
from chalicelib.storage.aggregates.items_dynamodb import DynamoAggregateStore
from chalicelib.storage.dynamodb import DynamoEventStore
from chalicelib.wiring import Services

# ---- the trace ----------------------------------------------------------------------------

UAS: dict[str, tuple[str, ...]] = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Mobile Safari/537.36",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
    "bot": (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "python-requests/2.32.3",
    ),
}
DEVICE_MIX = {"desktop": 0.42, "mobile": 0.48, "tablet": 0.10}
COUNTRY_MIX = {
    "US": 0.22,
    "BR": 0.16,
    "DE": 0.08,
    "JP": 0.08,
    "GB": 0.06,
    "FR": 0.05,
    "PT": 0.04,
    "IN": 0.05,
    "ID": 0.04,
    "MX": 0.04,
    "KR": 0.03,
    "CA": 0.03,
    None: 0.12,
}
CHANNELS = (None, None, None, "all", "promoted", "hashtag", "by_user", "reactions", "artwork")
# Referrer URL -> the domain DESIGN.md keeps (host, lower-case, without www.).
REFERRERS: dict[str | None, str | None] = {
    None: None,
    "https://makapix.club/": "makapix.club",
    "https://makapix.club/u/k3Jx9": "makapix.club",
    "https://www.reddit.com/r/PixelArt/": "reddit.com",
    "https://old.reddit.com/r/pixelart/comments/x": "old.reddit.com",
    "https://mastodon.social/@pixels": "mastodon.social",
    "https://news.ycombinator.com/item?id=1": "news.ycombinator.com",
    "https://t.co/AbCdEf": "t.co",
    "https://www.google.com/": "google.com",
    "https://duckduckgo.com/": "duckduckgo.com",
    "https://WWW.Tumblr.com/tagged/pixel": "tumblr.com",
    "android-app://com.google.android.gm/": "com.google.android.gm",
}
# Share of looks per UTC hour: a day curve with an evening peak (Europe + Americas).
HOUR_CURVE = (
    3,
    2,
    2,
    2,
    2,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    15,
    12,
    8,
    5,
)


@dataclass(frozen=True)
class TraceLook:
    """One look as a client sends it (plus the facts a lookup would give: country, device)."""

    at: datetime
    post: int
    artist: str | None  # the post's owner (None: an unregistered post)
    ip: str
    ua: str
    user: str | None  # a signed-in viewer's sub
    intent: str = "view"
    source: str = "web"
    channel: str | None = None
    referrer: str | None = None
    country: str | None = None
    device: str = "desktop"

    @property
    def day(self) -> str:
        return self.at.strftime("%Y-%m-%d")

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["at"] = codec.iso(self.at)
        return body

    @staticmethod
    def from_json(body: Mapping[str, Any]) -> TraceLook:
        values = dict(body)
        values["at"] = codec.parse_iso(str(values["at"]))
        return TraceLook(**values)


@dataclass
class Trace:
    looks: list[TraceLook]

    @property
    def posts(self) -> dict[int, str]:
        return {look.post: look.artist for look in self.looks if look.artist is not None}

    @property
    def days(self) -> list[str]:
        return sorted({look.day for look in self.looks})

    def country(self, ip: str | None) -> str | None:
        return self._countries.get(ip or "")

    def classify(self, ua: str | None) -> str:
        return self._devices.get(ua or "", "bot")

    def __post_init__(self) -> None:
        self.looks.sort(key=lambda look: look.at)
        self._countries = {look.ip: look.country for look in self.looks}
        self._devices = {look.ua: look.device for look in self.looks}

    def to_jsonl(self, path: Path) -> None:
        with path.open("w") as out:
            for look in self.looks:
                out.write(json.dumps(look.as_json(), separators=(",", ":")) + "\n")

    @staticmethod
    def from_jsonl(path: Path) -> Trace:
        with path.open() as lines:
            return Trace([TraceLook.from_json(json.loads(line)) for line in lines if line.strip()])


def _zipf_cumulative(n: int, s: float) -> list[float]:
    """Cumulative Zipf weights of ranks 1..n (``random.choices`` then bisects: O(log n))."""
    total = 0.0
    out = []
    for rank in range(1, n + 1):
        total += 1 / (rank**s)
        out.append(total)
    return out


def _pick(rng: random.Random, population: Sequence[Any], cumulative: Sequence[float]) -> Any:
    return rng.choices(population, cum_weights=cumulative)[0]


def generate_trace(
    *,
    looks: int = 50_000,
    days: int = 3,
    posts: int = 150,
    artists: int = 30,
    start: date = date(2026, 11, 20),
    seed: int = 7,
) -> Trace:
    """A seeded trace of ``looks`` web looks over ``days`` Days from ``start``."""
    rng = random.Random(seed)
    post_ids = list(range(1, posts + 1))
    artist_weights = _zipf_cumulative(artists, 0.8)
    owner = {p: f"artist-{_pick(rng, range(1, artists + 1), artist_weights)}" for p in post_ids}
    popularity = post_ids[:]
    rng.shuffle(popularity)  # popular posts spread over artists
    post_weights = _zipf_cumulative(posts, 1.1)
    viral = popularity[posts // 3]  # a mid-ranked post goes viral on the middle Day
    viral_day = days // 2

    visitors = _visitors(rng, max(60, looks // 6), artists)
    visitor_weights = _zipf_cumulative(len(visitors), 0.7)
    hour_weights = list(itertools.accumulate(HOUR_CURVE))
    out: list[TraceLook] = []
    last_post: dict[int, int] = {}
    base = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    while len(out) < looks:
        day = rng.randrange(days)
        at = base + timedelta(
            days=day,
            hours=_pick(rng, range(24), hour_weights),
            milliseconds=rng.randrange(3_600_000),
        )
        if rng.random() < 0.04:  # a crawler
            ua = rng.choice(UAS["bot"])
            ip = f"66.249.{rng.randrange(64, 96)}.{rng.randrange(1, 255)}"
            out.append(TraceLook(at, rng.choice(post_ids), None, ip, ua, None, device="bot"))
            continue
        n = _pick(rng, range(len(visitors)), visitor_weights)
        visitor = visitors[n]
        if rng.random() < 0.15 and n in last_post:
            post = last_post[n]  # a repeat look (a duplicate View when on the same Day)
        elif day == viral_day and rng.random() < 0.2:
            post = viral
        else:
            post = popularity[_pick(rng, range(posts), post_weights)]
        last_post[n] = post
        user = visitor["user"]
        if rng.random() < 0.01:
            user = owner[post]  # the author looking at their own post
        unknown = rng.random() < 0.003
        intent = "impression" if rng.random() < 0.25 else "view"
        look = TraceLook(
            at=at,
            post=post + 100_000 if unknown else post,
            artist=None if unknown else owner[post],
            ip=visitor["ip"],
            ua=visitor["ua"],
            user=user,
            intent=intent,
            source=rng.choices(("web", "widget", "api"), (0.7, 0.2, 0.1))[0],
            channel=rng.choice(CHANNELS),
            referrer=rng.choice(list(REFERRERS)) if rng.random() < 0.5 else None,
            country=visitor["country"],
            device=visitor["device"],
        )
        out.append(look)
        if intent == "impression" and rng.random() < 0.05:
            # A widget rotating too fast: the rate limit refuses the second one.
            out.append(TraceLook(**{**asdict(look), "at": at + timedelta(milliseconds=1200)}))
    return Trace(out[:looks])


def _visitors(rng: random.Random, n: int, artists: int) -> list[dict[str, Any]]:
    countries = list(COUNTRY_MIX)
    country_weights = list(COUNTRY_MIX.values())
    devices = list(DEVICE_MIX)
    out = []
    for k in range(n):
        country = rng.choices(countries, country_weights)[0]
        device = rng.choices(devices, list(DEVICE_MIX.values()))[0]
        # Private space for "no country": a GeoIP lookup finds nothing there.
        prefix = (
            f"10.{k % 250}" if country is None else f"{(k % 200) + 11}.{countries.index(country)}"
        )
        out.append(
            {
                "ip": f"{prefix}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "ua": rng.choice(UAS[device]),
                "device": device,
                "country": country,
                "user": f"fan-{k}" if rng.random() < 0.2 else None,
            }
        )
    return out


# ---- the truth ----------------------------------------------------------------------------


@dataclass
class Truth:
    """Expected closed Days ({pk, day} -> flat counters, ``uv``/``auv``, first/last View),
    the Visitors behind them (to check sketches over several Days), and what the recorder
    drops."""

    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    visitors: dict[tuple[str, str], set[tuple[Any, ...]]] = field(default_factory=dict)
    signed_in: dict[tuple[str, str], set[tuple[Any, ...]]] = field(default_factory=dict)
    drops: Counter[str] = field(default_factory=Counter)
    stored: int = 0
    views: int = 0

    def day_items(self, day: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {key: item for key, item in self.items.items() if key[1] == day}


def ground_truth(trace: Trace, impression_interval_s: int = 3) -> Truth:
    """What each post, artist and site Day holds once closed, from the trace alone."""
    truth = Truth()
    seen: set[tuple[Any, ...]] = set()
    next_slot_ms: dict[tuple[Any, ...], int] = {}
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    uniques: dict[tuple[str, str], set[tuple[Any, ...]]] = defaultdict(set)
    signed: dict[tuple[str, str], set[tuple[Any, ...]]] = defaultdict(set)
    times: dict[tuple[str, str], list[str]] = defaultdict(list)
    for look in trace.looks:
        if look.device == "bot":
            truth.drops["bot"] += 1
            continue
        if look.artist is None:
            truth.drops["unknown_post"] += 1
            continue
        if look.user is not None and look.user == look.artist:
            truth.drops["author_view"] += 1
            continue
        who = ("user", look.user) if look.user else ("anon", look.ip, look.ua)
        at_ms = int(look.at.timestamp() * 1000)
        if look.intent == "impression":
            if at_ms < next_slot_ms.get(who, -1):
                truth.drops["rate_limited"] += 1
                continue
            next_slot_ms[who] = at_ms + impression_interval_s * 1000
        else:
            if (who, look.post, look.day) in seen:
                truth.drops["duplicate"] += 1
                continue
            seen.add((who, look.post, look.day))
            truth.views += 1
        truth.stored += 1
        measure = "v" if look.intent == "view" else "i"
        measures = [measure, "a" + measure] if look.user else [measure]
        parts = {
            "c": look.country or "??",
            "d": look.device,
            "s": look.source,
            "ch": look.channel or "-",
            "h": look.at.strftime("%H"),
        }
        domain = REFERRERS.get(look.referrer)
        if domain:
            parts["r"] = domain
        for pk in (f"P#{look.post}", f"A#{look.artist}", "SITE"):
            key = (pk, look.day)
            for m in measures:
                counts[key][m] += 1
                for dimension, value in parts.items():
                    counts[key][f"{m}{dimension}:{value}"] += 1
            if look.intent == "view":
                uniques[key].add(who)
                if look.user:
                    signed[key].add(who)
                times[key].append(look.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    for key, counter in counts.items():
        item: dict[str, Any] = dict(counter)
        item["uv"], item["auv"] = len(uniques[key]), len(signed[key])
        truth.visitors[key], truth.signed_in[key] = uniques[key], signed[key]
        if times[key]:
            item["first_at"], item["last_at"] = min(times[key]), max(times[key])
        truth.items[key] = item
    return truth


_COMPARED = ("uv", "auv", "first_at", "last_at")
# How far a piece's sketch estimate may be from the exact distinct count: about three
# relative standard errors (lg_k 12 for all Visitors, 11 for signed-in ones), or 2.
_SKETCH_TOLERANCE = {"v": 0.05, "av": 0.07}


def compare(store: Any, truth: Truth, days: Iterable[str]) -> list[str]:
    """Differences between the closed Days in ``store`` and the truth (empty: equal): each
    Day read back from its series row and level-0 piece, each target's ``TOTAL`` (sums and
    activity), and every piece the activity says exists (sums, breakdowns and first/last
    equal to the merge of its children's truth, sketches within their error)."""
    aggregates = Aggregates(store)
    days = list(days)
    problems: list[str] = []
    wanted = {key: item for day in days for key, item in truth.day_items(day).items()}
    for (pk, day), expected in sorted(wanted.items()):
        got = aggregates.closed_day(layout.target_of(pk), day)
        if got is None:
            problems.append(f"{pk} {day}: missing")
            continue
        want = {k: v for k, v in expected.items() if k in _COMPARED or k in got or v}
        if got != want:
            problems.append(f"{pk} {day}: " + _differences(got, want))
    targets = sorted({pk for pk, _ in wanted})
    totals = store.get_items((pk, "TOTAL") for pk in targets)
    for pk in targets:
        problems += _compare_target(store, truth, pk, days, totals.get((pk, "TOTAL")) or {})
    return problems


def _differences(got: Mapping[str, Any], want: Mapping[str, Any]) -> str:
    diff = sorted(
        f"{name}: {got.get(name)} != {want.get(name)}"
        for name in set(got) | set(want)
        if got.get(name) != want.get(name)
    )
    return "; ".join(diff[:6])


def _compare_target(
    store: Any, truth: Truth, pk: str, days: Sequence[str], total: Mapping[str, Any]
) -> list[str]:
    """One target's ``TOTAL`` and pieces (levels 0..5) against the truth of ``days``."""
    numbers = {closed.day_number(day): day for day in days if (pk, day) in truth.items}
    active = closed.Activity(numbers)
    problems = []
    if closed.Activity.from_item(total).days != active.days:
        problems.append(f"{pk} TOTAL: activity {closed.Activity.from_item(total).days}")
    for measure in ("v", "i", "av", "ai"):
        summed = sum(int(truth.items[(pk, day)].get(measure, 0)) for day in numbers.values())
        if int(total.get(measure, 0)) != summed:
            problems.append(f"{pk} TOTAL {measure}: {total.get(measure)} != {summed}")
    expected: dict[tuple[int, int], closed.Piece] = {}

    def truth_piece(level: int, start: int) -> closed.Piece:
        if (level, start) not in expected:
            if level == 0:
                expected[(level, start)] = _truth_piece(truth.items[(pk, numbers[start])], start)
            else:
                children = closed.children(level, start, active)
                expected[(level, start)] = closed.merge(
                    level, start, [truth_piece(*child) for child in children]
                )
        return expected[(level, start)]

    first, last = active.days[0], active.days[-1]
    pieces = [
        (level, start)
        for level in range(closed.MAX_LEVEL + 1)
        for start in range(first - first % (1 << level), last + 1, 1 << level)
        if closed.exists(level, start, active)
    ]
    found = store.get_items(closed.piece_key(pk, level, start) for level, start in pieces)
    for level, start in pieces:
        name = f"{pk} B{level}#{closed.day_name(start)}"
        item = found.get(closed.piece_key(pk, level, start))
        if item is None:
            problems.append(f"{name}: missing")
            continue
        got, want = closed.Piece.from_item(item), truth_piece(level, start)
        for part in ("totals", "parts", "first_at", "last_at"):
            if getattr(got, part) != getattr(want, part):
                problems.append(f"{name} {part}: {getattr(got, part)} != {getattr(want, part)}")
        in_block = [numbers[n] for n in active.days if start <= n <= closed.block_end(level, start)]
        for measure, sets in (("v", truth.visitors), ("av", truth.signed_in)):
            exact = len(set().union(*(sets[(pk, day)] for day in in_block)))
            raw = got.sketches.get(measure)
            estimate = datasketches.hll_sketch.deserialize(raw).get_estimate() if raw else 0.0
            if abs(estimate - exact) > max(2.0, _SKETCH_TOLERANCE[measure] * exact):
                problems.append(f"{name} sketch {measure}: {estimate:.0f} for {exact}")
    return problems


def _truth_piece(item: Mapping[str, Any], start: int) -> closed.Piece:
    """A truth Day as the level-0 piece the close must write (no sketches: they are
    checked against the Visitor sets)."""
    parts: dict[str, dict[str, dict[str, int]]] = {}
    for name, n in item.items():
        prefix, _, value = name.partition(":")
        measure = next((m for m in ("av", "ai", "v", "i") if prefix.startswith(m)), None)
        if value and measure and prefix[len(measure) :] != "h":
            parts.setdefault(measure, {}).setdefault(prefix[len(measure) :], {})[value] = n
    return closed.Piece(
        level=0,
        start=start,
        totals={m: int(item[m]) for m in ("v", "i", "av", "ai") if item.get(m)},
        parts=closed.cap_parts(parts),
        first_at=item.get("first_at"),
        last_at=item.get("last_at"),
    )


def live_below_truth(store: Any, looks: Sequence[TraceLook], day: str) -> list[str]:
    """Open-Day items whose live `v`/`i` are below what the looks so far hold (at least once
    means never below)."""
    # Only this Day's looks (and the minute before, for the Impression rate limit's state).
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    recent = [look for look in looks if look.at >= start - timedelta(minutes=1)]
    truth = ground_truth(Trace(recent))
    expected = truth.day_items(day)
    found = store.get_items((pk, f"D#{d}") for pk, d in expected)
    low = []
    for (pk, d), item in expected.items():
        live = found.get((pk, f"D#{d}")) or {}
        for measure in ("v", "i", "av", "ai"):
            if int(live.get(measure, 0)) < int(item.get(measure, 0)):
                low.append(f"{pk} {d} {measure}: {live.get(measure, 0)} < {item.get(measure)}")
    return low


# ---- feeding the real handlers ------------------------------------------------------------


class BulkEventStore:
    """Test/bench-only EventStore: raw events buffered and written by BatchWriteItem.

    The View dedup of the real conditional put is kept in memory (one writer). Reads go
    to the real ``DynamoEventStore``. ``flush`` before pumping the stream.
    """

    def __init__(self, client: Any, table: str, ttl_days: int) -> None:
        # Any table's put_items batches by 25 with retries: reuse it for the events table.
        self._writer = DynamoAggregateStore(client, table)
        self._reader = DynamoEventStore(client, table, ttl_days)
        self._ttl_days = ttl_days
        self._seen: set[tuple[str, str]] = set()
        self._buffer: list[dict[str, Any]] = []
        self.writes = 0

    def put_view(self, event: ViewEvent) -> bool:
        item = codec.event_item(event, self._ttl_days)
        key = (item["pk"], item["sk"])
        if key in self._seen:
            return False
        self._seen.add(key)
        self._buffer.append(item)
        return True

    def put_impression(self, event: ViewEvent) -> None:
        self._buffer.append(codec.event_item(event, self._ttl_days))

    def day_events(self, post_id: int, day: str, shard: int | None = None) -> Iterator[ViewEvent]:
        return self._reader.day_events(post_id, day, shard)

    def flush(self) -> None:
        buffered, self._buffer = self._buffer, []
        self.writes += len(buffered)
        self._writer.put_items(buffered)


class MemoryStream:
    """An EventStore wrapper that emits a stream record per stored event (NEW_IMAGE)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.records: list[dict[str, Any]] = []

    def _emit(self, event: ViewEvent) -> None:
        item = codec.event_item(event, 35)
        typed = codec.to_typed(item)
        seq = len(self.records) + 1
        self.records.append(
            {
                "eventID": f"mem-{seq}",
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": int(event.occurred_at.timestamp()),
                    "Keys": {"pk": typed["pk"], "sk": typed["sk"]},
                    "NewImage": typed,
                    "SequenceNumber": str(10**20 + seq),
                    "SizeBytes": codec.item_size(item),
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/mem/stream/x",
            }
        )

    def put_view(self, event: ViewEvent) -> bool:
        stored = bool(self.inner.put_view(event))
        if stored:
            self._emit(event)
        return stored

    def put_impression(self, event: ViewEvent) -> None:
        self.inner.put_impression(event)
        self._emit(event)

    def day_events(self, post_id: int, day: str, shard: int | None = None) -> Iterator[ViewEvent]:
        return iter(self.inner.day_events(post_id, day, shard))


class MemoryPump:
    """``StreamPump``'s semantics over a ``MemoryStream`` (benches, tests): batches of up to
    ``batch_size`` records in Lambda's shape; a batch that raised or answered
    ``batchItemFailures`` comes again from the failed record."""

    def __init__(
        self,
        stream: MemoryStream,
        handler: Callable[[dict[str, Any], Any], Any],
        batch_size: int = 100,
        retries_per_cycle: int = 3,
    ) -> None:
        from vtsops.trigger_rollup import PumpReport

        self._stream = stream
        self._handler = handler
        self._batch_size = batch_size
        self._retries = retries_per_cycle
        self.position = 0
        self.batches = 0
        self.totals = PumpReport()

    def pump_once(self) -> Any:
        from vtsops.trigger_rollup import LocalContext, PumpReport

        report = PumpReport()
        while self.position < len(self._stream.records):
            records = self._stream.records[self.position : self.position + self._batch_size]
            first = int(records[0]["dynamodb"]["SequenceNumber"])
            try:
                answer = self._handler({"Records": records}, LocalContext("aggregate")) or {}
                failures = answer.get("batchItemFailures") or []
                failed_at = min((int(f["itemIdentifier"]) for f in failures), default=None)
            except Exception:  # a function error: Lambda retries the whole batch
                failed_at = first
            self.batches += 1
            report.batches += 1
            done = [
                r
                for r in records
                if failed_at is None or int(r["dynamodb"]["SequenceNumber"]) < failed_at
            ]
            self.position += len(done)
            report.records += len(done)
            if failed_at is not None:
                report.failures += 1
                if report.failures >= self._retries:
                    report.lag_records = len(self._stream.records) - self.position
                    break
        for name in ("batches", "records", "failures"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(report, name))
        return report


@dataclass
class ReplayStats:
    looks: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    pumps: int = 0
    closes: int = 0


class Replayer:
    """Feeds a trace through the real recorder, pumping and closing as trace time passes."""

    def __init__(
        self,
        services: Services,
        trace: Trace,
        *,
        pump: Callable[[], Any],
        close: Callable[[], Any] | None = None,
        bulk: BulkEventStore | None = None,
        pump_every_s: float = 3600,
        on_pump: Callable[[datetime, Sequence[TraceLook]], None] | None = None,
    ) -> None:
        if not isinstance(services.clock, FixedClock):
            raise TypeError("a replay needs services built with a FixedClock")
        self.services = services
        self.clock: FixedClock = services.clock
        self.trace = trace
        self._pump = pump
        self._close = close
        self._bulk = bulk
        self._pump_every_s = pump_every_s
        self._on_pump = on_pump
        self.recorder = WebRecorder(
            events=bulk or services.events,
            registry=services.registry,
            posts=services.posts,
            drops=services.drops,
            clock=self.clock,
            classify=trace.classify,
            country=trace.country,
            visitor_key=services.settings.visitor_key or "replay-visitor-key",
            impression_interval_s=services.settings.impression_interval_s,
        )
        self.stats = ReplayStats()

    def register_posts(self) -> None:
        first = self.trace.looks[0].at if self.trace.looks else datetime.now(UTC)
        for post_id, artist in sorted(self.trace.posts.items()):
            self.services.registry.put_post(PostRecord(post_id, artist, first))

    def record(self, look: TraceLook) -> str:
        self.clock.at = look.at
        viewer = Claims(sub=look.user, role="viewer") if look.user else None
        hit = WebHit(
            post_id=look.post,
            request=RecordViewRequest(
                intent=look.intent,  # type: ignore[arg-type]
                source=look.source,  # type: ignore[arg-type]
                channel=look.channel,
                referrer=look.referrer,
            ),
            user_agent=look.ua,
            referer_header=None,
            source_ip=look.ip,
            viewer=viewer,
        )
        try:
            return self.recorder.record(hit).reason
        except NotFound:
            return "unknown_post"
        except RateLimited:
            return "rate_limited"

    def tick(self) -> None:
        """Pump what was recorded, then let the scheduler close what is finished."""
        if self._bulk is not None:
            self._bulk.flush()
        self._pump()
        self.stats.pumps += 1
        if self._close is not None:
            self._close()
            self.stats.closes += 1

    def run(
        self, progress: Callable[[int], None] | None = None, finish_after_s: float = 7200
    ) -> ReplayStats:
        """Every look in order; a tick every ``pump_every_s`` of trace time; at the end the
        clock moves ``finish_after_s`` past the last Day so every Day can close."""
        self.register_posts()
        looks = self.trace.looks
        next_tick = looks[0].at + timedelta(seconds=self._pump_every_s) if looks else None
        for n, look in enumerate(looks):
            while next_tick is not None and look.at >= next_tick:
                self.clock.at = next_tick
                self.tick()
                if self._on_pump:
                    self._on_pump(next_tick, looks[:n])
                next_tick += timedelta(seconds=self._pump_every_s)
            self.stats.outcomes[self.record(look)] += 1
            self.stats.looks += 1
            if progress and n % 500 == 0:
                progress(n)
        if looks:
            last_day = date.fromisoformat(looks[-1].day)
            end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            self.clock.at = end + timedelta(seconds=finish_after_s)
            self.tick()
            if self._on_pump:
                self._on_pump(self.clock.at, looks)
        self.services.drops.flush()
        if progress:
            progress(len(looks))
        return self.stats
