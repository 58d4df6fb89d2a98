"""Stats against the truth of a replayed trace: the real recorder, stream pump, ``aggregate``
and ``close_days`` fill the aggregates (moto over HTTP), then every count of PostStats,
ArtistStats and site stats equals what the trace holds, before and after the close.

A second test replays 30 Days through the same handlers over the in-memory adapters (they
pass the same contract tests) to check 30-day unique Visitors within 3 % of the truth:
closing 30 Days on moto would take minutes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from vtsops.replay import (
    REFERRERS,
    BulkEventStore,
    MemoryPump,
    MemoryStream,
    Replayer,
    Trace,
    TraceLook,
    generate_trace,
)
from vtsops.trigger_rollup import CloseScheduler, StreamPump

from chalicelib.auth import Claims
from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.stats.runner import top
from chalicelib.storage import codec
from chalicelib.storage.aggregates import layout
from chalicelib.storage.memory import MemoryRegistry
from chalicelib.wiring import Services, dynamodb_services, memory_services, use

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = Claims(sub="ops", role="admin")


def counted_views(looks: Iterable[TraceLook]) -> list[tuple[TraceLook, tuple[Any, ...]]]:
    """The looks that count as Views, each with its Visitor, by DESIGN.md's rules."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for look in looks:
        if look.device == "bot" or look.artist is None or look.intent != "view":
            continue
        if look.user is not None and look.user == look.artist:
            continue
        who = ("user", look.user) if look.user else ("anon", look.ip, look.ua)
        if (who, look.post, look.day) in seen:
            continue
        seen.add((who, look.post, look.day))
        out.append((look, who))
    return out


def counted_impressions(looks: Iterable[TraceLook], interval_s: int = 3) -> list[TraceLook]:
    next_ms: dict[tuple[Any, ...], int] = {}
    out = []
    for look in looks:
        if look.device == "bot" or look.artist is None or look.intent != "impression":
            continue
        if look.user is not None and look.user == look.artist:
            continue
        who = ("user", look.user) if look.user else ("anon", look.ip, look.ua)
        at_ms = int(look.at.timestamp() * 1000)
        if at_ms < next_ms.get(who, -1):
            continue
        next_ms[who] = at_ms + interval_s * 1000
        out.append(look)
    return out


def expected(looks: list[TraceLook], keep: Any, first: str, last: str) -> dict[str, Any]:
    """What stats over UTC Days first..last must say for the looks ``keep`` selects."""
    views = [
        (look, who)
        for look, who in counted_views(looks)
        if keep(look) and first <= look.day <= last
    ]
    shown = [
        look for look in counted_impressions(looks) if keep(look) and first <= look.day <= last
    ]
    signed = [(look, who) for look, who in views if look.user]
    daily: dict[str, list[Any]] = {}
    for look, who in views:
        daily.setdefault(look.day, [0, 0, set()])
        daily[look.day][0] += 1
        daily[look.day][2].add(who)
    for look in shown:
        daily.setdefault(look.day, [0, 0, set()])[1] += 1
    hours = [0] * 24
    for look, _ in views:
        hours[look.at.hour] += 1
    referrers = Counter(d for look, _ in views if (d := REFERRERS.get(look.referrer)))
    return {
        "views": len(views),
        "impressions": len(shown),
        "unique_visitors": len({who for _, who in views}),
        "by_country": top(Counter(look.country or "??" for look, _ in views), 10, other=True),
        "by_device": {
            d: sum(1 for look, _ in views if look.device == d)
            for d in ("desktop", "mobile", "tablet", "player")
        },
        "by_source": {
            s: sum(1 for look, _ in views if look.source == s)
            for s in ("web", "widget", "api", "player")
        },
        "by_channel": dict(Counter(look.channel or "-" for look, _ in views)),
        "by_referrer": top(referrers, 10, other=False),
        "impressions_by_country": top(
            Counter(look.country or "??" for look in shown), 10, other=True
        ),
        "by_hour_local": hours,
        "daily": {day: (v, i, len(who)) for day, (v, i, who) in daily.items()},
        "first_view_at": min((look.at for look, _ in views), default=None),
        "last_view_at": max((look.at for look, _ in views), default=None),
        "authenticated_views": len(signed),
        "authenticated_unique_visitors": len({who for _, who in signed}),
    }


def check(stats: dict[str, Any], want: dict[str, Any], *, uniques_exact: bool) -> None:
    for name in (
        "views",
        "impressions",
        "by_country",
        "by_device",
        "by_source",
        "by_channel",
        "by_referrer",
        "impressions_by_country",
        "by_hour_local",
    ):
        assert stats[name] == want[name], name
    assert stats["authenticated"]["views"] == want["authenticated_views"]
    for row in stats["daily"]:
        v, i, u = want["daily"].get(row["date"], (0, 0, 0))
        assert (row["views"], row["impressions"], row["unique_visitors"]) == (v, i, u), row
    iso = lambda at: at.isoformat(timespec="milliseconds").replace("+00:00", "Z") if at else None  # noqa: E731
    assert (stats["first_view_at"], stats["last_view_at"]) == (
        iso(want["first_view_at"]),
        iso(want["last_view_at"]),
    )
    if uniques_exact:
        assert stats["unique_visitors"] == want["unique_visitors"]
        assert stats["authenticated"]["unique_visitors"] == want["authenticated_unique_visitors"]
    else:
        assert stats["unique_visitors"] == pytest.approx(want["unique_visitors"], rel=0.03)
        assert stats["authenticated"]["unique_visitors"] == pytest.approx(
            want["authenticated_unique_visitors"], rel=0.03, abs=2
        )


def all_stats(services: Services, trace: Trace, first: str, last: str) -> dict[str, Any]:
    params = {"from": first, "to": last}
    posts = Counter(look.post for look, _ in counted_views(trace.looks))
    artists = Counter(look.artist for look, _ in counted_views(trace.looks))
    top_post, top_artist = posts.most_common(1)[0][0], artists.most_common(1)[0][0]
    return {
        "post": (top_post, services.stats.post_stats(ADMIN, str(top_post), params)),
        "artist": (top_artist, services.stats.artist_stats(ADMIN, str(top_artist), params)),
        "site": services.stats.site_stats(ADMIN, params),
    }


def check_all(
    got: dict[str, Any], looks: list[TraceLook], first: str, last: str, *, exact: bool
) -> None:
    post, stats = got["post"]
    check(stats, expected(looks, lambda look: look.post == post, first, last), uniques_exact=exact)
    artist, stats = got["artist"]
    check(
        stats, expected(looks, lambda look: look.artist == artist, first, last), uniques_exact=exact
    )
    check(got["site"], expected(looks, lambda look: True, first, last), uniques_exact=exact)


def test_stats_equal_the_truth_of_a_replay_before_and_after_the_close(aws_env: Settings) -> None:
    trace = generate_trace(looks=1_500, days=2, posts=20, artists=5, seed=5)
    services = dynamodb_services(aws_env, clock=FixedClock(trace.looks[0].at))
    services.registry = MemoryRegistry()
    bulk = BulkEventStore(services.client, aws_env.events_table, aws_env.event_ttl_days)
    # Batches of up to 1000 records; ticks every 6 h of trace time keep one item's update
    # under ~150 counters (moto's UpdateExpression parser recurses per clause).
    pump = StreamPump(aws_env, batch_size=1000)
    scheduler = CloseScheduler()
    first, last = trace.days
    checked: list[str] = []

    def on_pump(at: datetime, looks: list[TraceLook]) -> None:
        if at.strftime("%Y-%m-%d") != last or at.hour != 12:
            return
        # Midday of the last Day: the first Day closed, the last one live. Stats take a
        # closed Day from its series row and pieces, an open one from its live item (the
        # first Day's live item is still there, and never added).
        assert services.aggregate_items.get_watermark() == first
        got = all_stats(services, trace, first, last)
        for pk, stats in (
            (f"P#{got['post'][0]}", got["post"][1]),
            (f"A#{got['artist'][0]}", got["artist"][1]),
            ("SITE", got["site"]),
        ):
            done = services.aggregates.closed_day(layout.target_of(pk), first)
            found = services.aggregate_items.get_items([(pk, f"D#{first}"), (pk, f"D#{last}")])
            live = found[(pk, f"D#{last}")]
            assert done is not None and (pk, f"D#{first}") in found
            assert stats["views"] == done["v"] + live["v"]
            assert stats["impressions"] == done.get("i", 0) + live.get("i", 0)
            assert [row["views"] for row in stats["daily"]] == [done["v"], live["v"]]
        # The closed Day is exact; live counters are at least once (a retried stream batch
        # may count twice until the close), so never below the truth so far.
        post, stats = got["post"]
        want = expected(looks, lambda look: look.post == post, first, last)
        assert stats["daily"][0]["views"] == want["daily"][first][0]
        assert stats["views"] >= want["views"] and stats["impressions"] >= want["impressions"]
        assert got["site"]["fresh_as_of"] <= codec.iso(at)
        checked.append("live")

    with use(services):
        Replayer(
            services,
            trace,
            pump=pump.pump_once,
            close=scheduler.run_once,
            bulk=bulk,
            on_pump=on_pump,
            pump_every_s=6 * 3600,
        ).run()
        assert checked == ["live"]
        assert services.aggregate_items.get_watermark() == last
        # One closed Day: unique Visitors are exact.
        check_all(all_stats(services, trace, last, last), trace.looks, last, last, exact=True)
        # Two closed Days: a union of the pieces' sketches (small cardinalities: within 3 %).
        check_all(all_stats(services, trace, first, last), trace.looks, first, last, exact=False)
        # The public counter is the lifetime Views of the post.
        post, stats = all_stats(services, trace, first, last)["post"]
        assert services.stats.counter(str(post))["views"] == stats["views"]


def test_30_day_unique_visitors_stay_within_3_percent() -> None:
    trace = generate_trace(
        looks=6_000, days=30, posts=20, artists=5, start=date(2026, 10, 1), seed=9
    )
    services = memory_services(Settings(visitor_key="k"), clock=FixedClock(trace.looks[0].at))
    stream = MemoryStream(services.events)
    services.events = stream  # type: ignore[assignment]
    with use(services):
        pump = MemoryPump(
            stream, lambda event, context: services.aggregator.handle(event), batch_size=500
        )
        Replayer(
            services,
            trace,
            pump=pump.pump_once,
            close=lambda: services.day_closer.run(services.clock.now()),
            pump_every_s=24 * 3600,
        ).run()
        first, last = trace.days[0], trace.days[-1]
        assert services.aggregate_items.get_watermark() == last
        got = all_stats(services, trace, first, last)
        check_all(got, trace.looks, first, last, exact=False)
        assert got["post"][1]["unique_visitors_approximate"] is True
        # Every Day closed: final up to the end of the watermark Day.
        end = date.fromisoformat(last) + timedelta(days=1)
        assert got["site"]["fresh_as_of"] == f"{end.isoformat()}T00:00:00.000Z"
