#!/usr/bin/env python3
"""DynamoDB write units per counted View, all in, measured from outside: moto's recorder.

A burst of web looks (default 660 over 40 posts of 10 artists: 600 distinct visitors, each a
distinct client address with a browser's user agent, and 60 repeats of an earlier visitor's
look at the same post) goes through the real app (Chalice's test client, the DynamoDB
adapters, moto in server mode in its own process with MOTO_ENABLE_RECORDING); then the events
stream goes to the real ``aggregate`` handler in the deployed BatchSize (1,000; the burst
arrives within one 10 s batching window, so it is one batch), then the real ``close_days``
once the Day is over. The posts are registered through the API before the priced part.

Every request moto recorded after that point is priced by DynamoDB's rules, by replaying the
recording against a fresh moto server with a GetItem of each touched item before and after
each write (scripts/vtsops/wru.py says how each request is charged). Units are computed
from item sizes; moto's own timings and ConsumedCapacity are not figures.

Usage: python bench/bench_wru.py [--looks N] [--posts N] [--artists N] [--repeats N]
       [--batch-size N] [--containers N] [--seed N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from vtsops.wru import Scenario, figures, report_lines, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Scenario()
    parser.add_argument("--looks", type=int, default=defaults.looks)
    parser.add_argument("--posts", type=int, default=defaults.posts)
    parser.add_argument("--artists", type=int, default=defaults.artists)
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="stream records per aggregate invocation (deployed: 1000)",
    )
    parser.add_argument(
        "--containers",
        type=int,
        default=defaults.containers,
        help="API containers the looks are spread over, round robin (each its own caches)",
    )
    parser.add_argument("--quick", action="store_true", help="120 looks over 8 posts")
    args = parser.parse_args()
    if args.quick:
        args.looks, args.posts, args.artists, args.repeats = 120, 8, 3, 12
    logging.disable(logging.WARNING)
    scenario = Scenario(
        looks=args.looks,
        posts=args.posts,
        artists=args.artists,
        repeats=args.repeats,
        seed=args.seed,
        batch_size=args.batch_size,
        containers=args.containers,
    )
    results = {}
    for seen in (False, True):
        label = "posts seen before (steady state)" if seen else "every post's first look"
        print(f"==== {label} ====")
        result = run(replace(scenario, seen_before=seen))
        print("\n".join(report_lines(result)))
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
        print(f"(harness time, moto-bound, not a figure: {timings})\n")
        results["seen" if seen else "first"] = result
    first, seen_ = results["first"], results["seen"]
    print(
        f"WRU per counted View, burst of {len(seen_.looks)} looks over {scenario.posts} posts: "
        f"{seen_.per_view(('record', 'aggregate')):.3f} recording and live (goal <= 1.3; "
        f"{seen_.per_view():.3f} with the Day's close) on posts seen before; "
        f"{first.per_view(('record', 'aggregate')):.3f} ({first.per_view():.3f}) when it is "
        "every post's first look"
    )
    print(
        "BENCH "
        + json.dumps(
            {
                "bench": "wru",
                **figures(seen_),
                "first_look": {k: v for k, v in figures(first).items() if k.startswith("wru")},
            },
            separators=(",", ":"),
        )
    )
    ok = all(r.replay_matches and not r.sheet.errors for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
