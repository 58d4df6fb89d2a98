#!/usr/bin/env python3
"""User-agent classification (chalicelib.enrich.device): accuracy on the labelled corpus, CPU
per event on a realistic mix, uncached parse cost, import and first-call cost.

Usage: python bench/bench_ua.py [--corpus PATH] [--events N] [--seed S]

The corpus is JSON lines of {"ua", "label", "src"}, labels desktop/mobile/tablet/bot; by
default ../shared/data/user-agents-dev.jsonl relative to the project root. Exit 2 when it is
missing, 1 when an accuracy target is missed (accuracy >= 97 %, bot recall >= 97 %, browsers
called bots <= 0.5 %), else 0. CPU figures are reported, not gated: they depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "user-agents-dev.jsonl"
LABELS = ("desktop", "mobile", "tablet", "bot")
TARGET_ACCURACY = 0.97
TARGET_BOT_RECALL = 0.97
TARGET_BROWSERS_AS_BOTS = 0.005
TARGET_MEDIAN_US = 50.0

# Written for this benchmark (not taken from the corpus): a cold process classifies these
# first, to measure what the first request of a fresh Lambda pays.
FIRST_DESKTOP_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
FIRST_ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 15; SM-X920) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.7444.171 Safari/537.36"
)
PLAYER_UAS = (
    "Makapix-Player/1.4.2 (esp32-s3; fw 2026.10.1)",
    "PixelFrame/2.0.7 (Linux; armv7l)",
    "Divoom/3.1 (Pixoo-64)",
)


def load_corpus(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def kind_of(ua: str) -> str:
    """Which path an uncached classification takes (for the cost breakdown)."""
    from chalicelib.enrich import device_rules as rules

    if rules.AUTOMATION_RE.search(ua) or rules.CONTACT_RE.search(ua):
        return "fast path (library/contact)"
    if "ndroid" in ua and not rules.ANDROID_REDUCED_RE.search(ua):
        return "web + device tables (Android model)"
    return "web table (ua-parser, robot lists)"


def import_cost() -> tuple[float, float, float]:
    """Median of 3 fresh processes: -X importtime cumulative ms of the module, then wall ms of
    the first classify() of a desktop and then of an Android-with-model user agent."""
    probe = (
        "import time, json\n"
        "import chalicelib.enrich.device as d\n"
        f"t = time.perf_counter(); d.classify({FIRST_DESKTOP_UA!r}); a = time.perf_counter() - t\n"
        f"t = time.perf_counter(); d.classify({FIRST_ANDROID_UA!r}); b = time.perf_counter() - t\n"
        "print(json.dumps([a * 1000, b * 1000]))\n"
    )
    imports, firsts, androids = [], [], []
    for _ in range(3):
        run = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", probe],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in run.stderr.splitlines():
            if line.rstrip().endswith("| chalicelib.enrich.device"):
                imports.append(int(line.split("|")[1]) / 1000)
        first, android = json.loads(run.stdout.strip().splitlines()[-1])
        firsts.append(first)
        androids.append(android)
    return statistics.median(imports), statistics.median(firsts), statistics.median(androids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--events", type=int, default=200_000, help="events in the mix")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the mix")
    args = parser.parse_args()

    if not args.corpus.is_file():
        print(
            f"corpus not found: {args.corpus} (pass --corpus PATH; it is JSON lines of "
            '{"ua", "label", "src"})',
            file=sys.stderr,
        )
        return 2
    rows = load_corpus(args.corpus)

    import_ms, first_ms, first_android_ms = import_cost()

    from chalicelib.enrich import device

    # --- accuracy, and the cold uncached cost (lazy loads and regex compilation included)
    confusion: Counter[tuple[str, str]] = Counter()
    cold_ns: list[int] = []
    device.cache_clear()
    cpu0 = time.process_time_ns()
    for row in rows:
        started = time.perf_counter_ns()
        got = device.classify(row["ua"])
        cold_ns.append(time.perf_counter_ns() - started)
        confusion[(row["label"], got)] += 1
    cold_cpu_s = (time.process_time_ns() - cpu0) / 1e9

    total = len(rows)
    correct = sum(n for (want, got), n in confusion.items() if want == got)
    bots = sum(n for (want, _), n in confusion.items() if want == "bot")
    browsers = total - bots
    bot_recall = confusion[("bot", "bot")] / bots if bots else 1.0
    browsers_as_bots = (
        sum(n for (want, got), n in confusion.items() if want != "bot" and got == "bot") / browsers
        if browsers
        else 0.0
    )
    accuracy = correct / total

    # --- realistic mix: Zipf-weighted browser user agents, some robots, some players
    rng = random.Random(args.seed)
    browser_uas = [r["ua"] for r in rows if r["label"] != "bot"]
    bot_uas = [r["ua"] for r in rows if r["label"] == "bot"]
    rng.shuffle(browser_uas)
    weights = [1 / (rank**args.zipf) for rank in range(1, len(browser_uas) + 1)]
    n_bots = args.events // 10
    n_players = args.events // 20
    mix = rng.choices(browser_uas, weights=weights, k=args.events - n_bots - n_players)
    mix += rng.choices(bot_uas, k=n_bots)
    mix += rng.choices(PLAYER_UAS, k=n_players)
    rng.shuffle(mix)

    device.cache_clear()
    seen: set[str] = set()
    hit_ns: list[int] = []
    miss_ns: dict[str, list[int]] = {}
    per_call: list[int] = []
    cpu0 = time.process_time_ns()
    for ua in mix:
        first_time = ua not in seen
        started = time.perf_counter_ns()
        device.classify(ua)
        elapsed = time.perf_counter_ns() - started
        per_call.append(elapsed)
        if first_time:
            seen.add(ua)
            miss_ns.setdefault(kind_of(ua), []).append(elapsed)
        else:
            hit_ns.append(elapsed)
    mix_cpu_ns = time.process_time_ns() - cpu0
    info = device.cache_info()
    uncached = [ns for values in miss_ns.values() for ns in values]
    median_us = statistics.median(per_call) / 1000

    # --- report
    # Relative to the repository, so recorded figures name no machine's folders.
    shown = os.path.relpath(Path(args.corpus).resolve(), ROOT)
    print(f"corpus: {shown} ({total} user agents: {bots} bots, {browsers} browsers)")
    print(
        f"accuracy {accuracy:.2%} (target >= {TARGET_ACCURACY:.0%})   "
        f"bot recall {bot_recall:.2%} (>= {TARGET_BOT_RECALL:.0%})   "
        f"browsers called bots {browsers_as_bots:.2%} (<= {TARGET_BROWSERS_AS_BOTS:.1%})"
    )
    predicted = ("desktop", "mobile", "tablet", "player", "bot")
    print("confusion (rows: label, columns: classified as)")
    print("           " + "".join(f"{p:>9}" for p in predicted))
    for label in LABELS:
        print(f"  {label:<9}" + "".join(f"{confusion[(label, p)]:>9}" for p in predicted))
    print(
        f"realistic mix: {args.events} events (Zipf s={args.zipf} over {len(browser_uas)} "
        f"browser UAs, 10 % robots, 5 % players), {len(seen)} distinct, cache "
        f"{info.hits / (info.hits + info.misses):.2%} hits (maxsize {info.maxsize})"
    )
    print(
        f"  per classify, wall: median {median_us:.2f} µs (target <= {TARGET_MEDIAN_US:.0f}), "
        f"p95 {pct(per_call, 0.95):.2f} µs, p99 {pct(per_call, 0.99):.1f} µs, "
        f"mean {statistics.fmean(per_call) / 1000:.1f} µs"
    )
    print(
        f"  CPU (process_time over the whole mix): {mix_cpu_ns / len(mix) / 1000:.1f} µs "
        f"per event on average; cache hits alone: median {statistics.median(hit_ns) / 1000:.2f} µs"
    )
    print(
        f"uncached classify, tables loaded ({len(uncached)} first sightings in the mix): "
        f"median {statistics.median(uncached) / 1000:.0f} µs, p95 {pct(uncached, 0.95):.0f} µs"
    )
    for kind, values in sorted(miss_ns.items()):
        print(
            f"  {kind:<42} n={len(values):<5} median {statistics.median(values) / 1000:>8.0f} µs"
            f"   p95 {pct(values, 0.95):>8.0f} µs"
        )
    print(
        f"uncached classify, cold process (corpus pass incl. lazy loads and regex compilation): "
        f"median {statistics.median(cold_ns) / 1000:.0f} µs, p95 {pct(cold_ns, 0.95):.0f} µs, "
        f"{cold_cpu_s:.1f} s CPU for {total}"
    )
    print(
        f"import chalicelib.enrich.device: {import_ms:.1f} ms (-X importtime, cumulative); first "
        f"classify() in a fresh process: {first_ms:.0f} ms (loads the web table); "
        f"first Android model: +{first_android_ms:.0f} ms (the device table and device-detector)"
    )
    print(
        "BENCH "
        + json.dumps(
            {
                "bench": "ua",
                "corpus_size": total,
                "accuracy": round(accuracy, 4),
                "bot_recall": round(bot_recall, 4),
                "browsers_called_bots": round(browsers_as_bots, 4),
                "mix_median_us": round(median_us, 2),
                "mix_p95_us": round(pct(per_call, 0.95), 2),
                "mix_mean_us": round(statistics.fmean(per_call) / 1000, 1),
                "uncached_median_us": round(statistics.median(uncached) / 1000, 1),
                "import_ms": round(import_ms, 1),
                "first_call_ms": round(first_ms, 1),
                "first_android_ms": round(first_android_ms, 1),
            }
        )
    )
    ok = (
        accuracy >= TARGET_ACCURACY
        and bot_recall >= TARGET_BOT_RECALL
        and browsers_as_bots <= TARGET_BROWSERS_AS_BOTS
    )
    if not ok:
        print("FAIL: an accuracy target is not met", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
