#!/usr/bin/env python3
"""A viral post: 3,000 Views a second on one post for 10 simulated minutes, with and
without write shards (docs/adr/0016-write-shards.md).

The simulation (scripts/vtsops/viral.py) drives the real web recorders (several containers,
each with its own post cache), the real stream handler in Lambda's record shape and
batching (1,000 records or 10 s), and the real close, over the in-memory adapters behind a
model of DynamoDB's per-partition-key limits: 1,000 write units and 3,000 read units a
second per key, priced from the items' sizes, no burst or adaptive capacity. A request past
a limit is refused as the DynamoDB adapter refuses a throttled one (the recording path then
answers 503).

Runs: ``with shards`` (the defaults: a post past VTS_HOT_VIEWS_PER_S is marked hot and its
looks spread over VTS_HOT_SHARDS keys; a throttled write falls back to the Visitor's
shard) and ``without shards`` (VTS_HOT_SHARDS=0: one key per post and Day, as before);
``--fallback-only`` adds a run where posts are never marked hot (VTS_HOT_VIEWS_PER_S=0) and
only the throttle fallback shards. Runs go in parallel processes (``--jobs``).

Usage: python bench/bench_viral.py [--minutes N] [--peak N] [--jobs N] [--fallback-only]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from vtsops.viral import Scenario, ViralResult, simulate  # noqa: E402

RUNS = {
    "with shards": {},
    "without shards": {"hot_shards": 0},
    "fallback only": {"hot_views_per_s": 0},
}


def run(name: str, scenario: Scenario) -> tuple[str, ViralResult, float]:
    started = time.perf_counter()

    def progress(second: int, result: ViralResult) -> None:
        if second % 60 == 59:
            print(f"  {name}: {second + 1} s simulated, {result.looks:,} looks", file=sys.stderr)

    result = simulate(scenario, progress)
    return name, result, time.perf_counter() - started


def keys_of(counts: dict[str, int]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{pk} {n:,}" for pk, n in sorted(counts.items(), key=lambda kv: -kv[1])[:3])


def verdict(closed: int, truth: int) -> str:
    return "= truth" if closed == truth else f"{closed - truth:+,} against the truth"


def answers(r: ViralResult) -> str:
    return " / ".join(f"{r.answers[code]:,}" for code in ("201", "204", "503"))


def others_closed(r: ViralResult) -> str:
    exact = f"{r.others_exact}/{r.scenario.other_posts} posts exact"
    return f"{r.others.closed:,} ({verdict(r.others.closed, r.others.counted)}, {exact})"


Row = tuple[str, Callable[[ViralResult, float], str]]
ROWS: list[Row] = [
    ("looks sent", lambda r, _: f"{r.looks:,}"),
    ("answered 201 / 204 / 503", lambda r, _: answers(r)),
    ("throttled writes", lambda r, _: f"{r.throttled:,}"),
    ("  on keys", lambda r, _: keys_of(dict(r.throttled_writes))),
    ("throttled reads", lambda r, _: f"{sum(r.throttled_reads.values()):,}"),
    ("max WCU/s on one key", lambda r, _: f"{r.peak_wcu[0]:,.0f} ({r.peak_wcu[1]})"),
    ("max RCU/s on one key", lambda r, _: f"{r.peak_rcu[0]:,.0f} ({r.peak_rcu[1]})"),
    (
        "hot post marked hot at",
        lambda r, _: "-" if r.hot_marked_at_s is None else f"{r.hot_marked_at_s:.1f} s",
    ),
    ("hot post keys the close read", lambda r, _: str(r.shard_keys)),
    ("hot post Views: attempted", lambda r, _: f"{r.hot.attempted:,}"),
    ("  truth (answered 201)", lambda r, _: f"{r.hot.counted:,}"),
    ("  closed Day", lambda r, _: f"{r.hot.closed:,} ({verdict(r.hot.closed, r.hot.counted)})"),
    ("  live counter", lambda r, _: f"{r.hot.live:,} ({r.hot.live - r.hot.counted:+,})"),
    ("other posts: attempted", lambda r, _: f"{r.others.attempted:,}"),
    ("  closed Day", lambda r, _: others_closed(r)),
    ("  live counter", lambda r, _: f"{r.others.live:,} ({r.others.live - r.others.counted:+,})"),
    ("stream batches (failed)", lambda r, _: f"{r.batches:,} ({r.failed_batches})"),
    (
        "runtime: traffic, close",
        lambda r, _: f"{r.seconds['traffic']:.0f} s, {r.seconds['close']:.0f} s",
    ),
    ("runtime of the run", lambda _, seconds: f"{seconds:.0f} s"),
]


def table(results: dict[str, tuple[ViralResult, float]]) -> None:
    names = list(results)
    cells = [(label, [show(*results[name]) for name in names]) for label, show in ROWS]
    width = max(len(label) for label, _ in cells) + 2
    widths = [max(len(name), *(len(v[i]) for _, v in cells)) + 3 for i, name in enumerate(names)]
    print(" " * width + "".join(name.rjust(widths[i]) for i, name in enumerate(names)))
    for label, values in cells:
        print(label.ljust(width) + "".join(v.rjust(widths[i]) for i, v in enumerate(values)))


def summary(results: dict[str, tuple[ViralResult, float]], scenario: Scenario) -> str:
    """The line for docs/BENCHMARKS.md."""
    sharded, single = results["with shards"][0], results["without shards"][0]

    def closed(r: ViralResult) -> str:
        if r.hot.closed != r.hot.counted:
            return f"closed {r.hot.closed:,} Views, NOT the truth ({r.hot.counted:,})"
        if r.hot.closed == r.hot.attempted:
            return f"closed Views exact ({r.hot.closed:,} = truth)"
        return (
            f"closed {r.hot.closed:,} Views (exact for what was stored) short by "
            f"{r.hot.attempted - r.hot.closed:,} of the {r.hot.attempted:,} Visitors who looked"
        )

    return (
        f"viral post: {scenario.peak_per_s:,} views/s for {scenario.minutes:g} min on one post: "
        f"throttled {sharded.throttled:,}, 503s {sharded.answers['503']:,}, {closed(sharded)} "
        f"with shards; without shards: throttled {single.throttled:,}, 503s "
        f"{single.answers['503']:,}, {closed(single)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes")
    parser.add_argument("--peak", type=int, default=3_000, help="the hot post's Views/s")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument(
        "--fallback-only",
        action="store_true",
        help="also run with posts never marked hot (the throttle fallback alone)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    scenario = Scenario(minutes=args.minutes, peak_per_s=args.peak, seed=args.seed)
    ramp_s = scenario.doubling_s * math.log2(scenario.peak_per_s / scenario.start_per_s)
    print(
        f"viral post: {scenario.peak_per_s:,} Views/s on one post for {scenario.minutes:g} "
        f"simulated minutes, ramping from {scenario.start_per_s:g}/s doubling every "
        f"{scenario.doubling_s:g} s (the peak after about {ramp_s:.0f} s), beside "
        f"{scenario.other_per_s:g} Views/s over {scenario.other_posts} other posts; "
        f"{scenario.repeat_share:.0%} of looks by a Visitor who looked before, every other "
        f"Visitor new (its own IPv4 address)\n{scenario.containers} recorder containers round "
        f"robin, each with its own post cache ({scenario.post_cache_s} s); stream batches of "
        f"{scenario.batch_size:,} records or {scenario.window_s:g} s; per-key limits "
        f"{scenario.wcu_per_key:,} WCU/s and {scenario.rcu_per_key:,} RCU/s (no burst, no "
        f"adaptive capacity); the close reads a key's 1 MB Query pages one per "
        f"{scenario.page_s:g} s\nwith shards: hot at {scenario.hot_views_per_s} looks/s, "
        f"{scenario.hot_shards} write shards"
    )
    wanted = {
        n: replace(scenario, **c)
        for n, c in RUNS.items()
        if args.fallback_only or n != "fallback only"
    }
    started = time.perf_counter()
    results: dict[str, tuple[ViralResult, float]] = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for name, result, seconds in pool.map(run, wanted, wanted.values()):
            results[name] = (result, seconds)
    elapsed = time.perf_counter() - started
    print()
    table(results)
    print(f"\nruntime: {elapsed:.0f} s for {len(results)} runs ({args.jobs} in parallel)")
    line = summary(results, scenario)
    print("\n" + line)
    figures = {
        name: {
            "looks": r.looks,
            "throttled": r.throttled,
            "throttled_keys": dict(r.throttled_writes.most_common(5)),
            "http_503": r.answers["503"],
            "max_wcu_per_s": r.peak_wcu[0],
            "max_wcu_key": r.peak_wcu[1],
            "hot_attempted": r.hot.attempted,
            "hot_truth": r.hot.counted,
            "hot_closed": r.hot.closed,
            "hot_live": r.hot.live,
            "others_truth": r.others.counted,
            "others_closed": r.others.closed,
            "hot_marked_at_s": r.hot_marked_at_s,
            "seconds": round(seconds, 1),
        }
        for name, (r, seconds) in results.items()
    }
    print(
        "BENCH "
        + json.dumps(
            {
                "bench": "viral",
                "minutes": args.minutes,
                "peak_per_s": args.peak,
                "runs": figures,
                "seconds": round(elapsed, 1),
                "line": line,
            },
            separators=(",", ":"),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
