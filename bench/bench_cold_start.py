#!/usr/bin/env python3
"""Cold start of the API Lambda: what a new container's first recording requests cost more
than a warm container's.

Usage: python bench/bench_cold_start.py [--runs N] [--warm N]

Each run is a fresh Python process (``--probe``) that times, in this order:

1. ``import app`` (wall);
2. the first ``POST /v1/posts/1/views`` through the real Chalice app (``chalice.test.Client``
   over the in-memory services, a registered post, the local GeoIP database when
   ``make setup`` has made one), with a desktop Chrome user agent;
3. then the first such request with an Android phone user agent naming its model (the one
   that needs the device database);
4. warm requests of both kinds, each with a user agent not seen before (the Chrome version
   varies) so the classifier's cache does not hide the parse, and a different address so no
   per-network cap drops them.

The goals (exit 1 when one is missed), medians over the runs:

* cold extra, desktop = import + first desktop request − warm desktop request ≤ 300 ms;
* cold extra, Android = first Android request − warm Android request ≤ 300 ms.

Storage is in memory, so the figures are about our code. In Lambda the first request also
creates the boto3 DynamoDB client (``chalicelib.wiring.get_services``); that is measured on
its own, in fresh processes, and reported beside the goals, not in them. The old figure,
``python -X importtime -c "import app"`` (cumulative), is printed too.

The probe imports nothing but ``os``, ``sys`` and ``time`` (loaded with the interpreter
anyway) before ``import app``, so the import is timed as a Lambda's init phase pays it; this
module's other imports are inside the functions.
"""

from __future__ import annotations

import os
import sys
import time

GOAL_MS = 300.0
DESKTOP_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36"
)
ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36"
)
BOTO3_PROBE = (
    "import time; t = time.perf_counter(); import boto3; i = time.perf_counter();"
    " boto3.client('dynamodb', region_name='us-east-1'); c = time.perf_counter();"
    " print((i - t) * 1000, (c - i) * 1000)"
)


def probe(warm: int) -> None:
    """One fresh process: import, first desktop, first Android, then warm requests."""
    started = time.perf_counter()
    import app

    import_ms = (time.perf_counter() - started) * 1000

    import json
    import statistics
    from pathlib import Path

    from chalice.test import Client

    from chalicelib.config import Settings
    from chalicelib.wiring import memory_services, use

    root = Path(__file__).resolve().parents[1]
    geoip = root / ".data" / "geoip" / "country.mmdb"
    settings = Settings(
        jwt_secret="bench-jwt-secret-0123456789abcdef-0123456789",
        visitor_key="bench-visitor-key-0123456789abcdef",
        geoip_db=str(geoip) if geoip.is_file() else None,
        trust_forwarded_for=True,
    )
    services = memory_services(settings)
    services.posts.register(1, "artist-1")
    sent = 0

    def post(template: str, version: int) -> float:
        nonlocal sent
        sent += 1
        headers = {
            "User-Agent": template.format(v=version),
            "Content-Type": "text/plain;charset=UTF-8",
            "X-Forwarded-For": f"81.{sent // 250 % 250}.{sent % 250}.9",
        }
        began = time.perf_counter()
        answer = client.http.post("/v1/posts/1/views", headers=headers, body='{"source":"web"}')
        elapsed = (time.perf_counter() - began) * 1000
        if answer.status_code != 201:
            raise SystemExit(f"expected 201, got {answer.status_code}: {answer.body!r}")
        return elapsed

    with use(services), Client(app.app, stage_name="dev") as client:
        first_desktop = post(DESKTOP_UA, 120)
        first_android = post(ANDROID_UA, 120)
        warm_desktop = [post(DESKTOP_UA, 1000 + i) for i in range(warm)]
        warm_android = [post(ANDROID_UA, 1000 + i) for i in range(warm)]
    print(
        json.dumps(
            {
                "import_ms": import_ms,
                "first_desktop_ms": first_desktop,
                "first_android_ms": first_android,
                "warm_desktop_ms": statistics.median(warm_desktop),
                "warm_android_ms": statistics.median(warm_android),
                "geoip": geoip.is_file(),
            }
        )
    )


def main() -> int:
    import argparse
    import json
    import re
    import statistics
    import subprocess
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes (median)")
    parser.add_argument("--warm", type=int, default=40, help="warm requests of each kind a run")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv], cwd=root, capture_output=True, text=True, check=True
        )

    probes = [
        json.loads(run(__file__, "--probe", str(args.warm)).stdout.splitlines()[-1])
        for _ in range(args.runs)
    ]
    fig = {k: statistics.median(p[k] for p in probes) for k in probes[0] if k != "geoip"}
    extra_desktop = statistics.median(
        p["import_ms"] + p["first_desktop_ms"] - p["warm_desktop_ms"] for p in probes
    )
    extra_android = statistics.median(p["first_android_ms"] - p["warm_android_ms"] for p in probes)

    importtime_line = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|\s*app$")
    importtimes: list[float] = []
    for _ in range(args.runs):
        stderr = run("-X", "importtime", "-c", "import app").stderr
        importtimes.extend(
            int(m.group(1)) / 1000 for m in map(importtime_line.search, stderr.splitlines()) if m
        )
    importtime_ms = statistics.median(importtimes)

    boto = [[float(x) for x in run("-c", BOTO3_PROBE).stdout.split()] for _ in range(args.runs)]
    boto_import_ms = statistics.median(b[0] for b in boto)
    boto_client_ms = statistics.median(b[1] for b in boto)

    n = args.runs
    print(
        f"fresh processes: {n}; in each, {args.warm} warm requests of each kind; medians; "
        f"in-memory storage, GeoIP database {'included' if probes[0]['geoip'] else 'absent'}"
    )
    print(f"  import app (wall):                     {fig['import_ms']:7.1f} ms")
    print(f"  first request, desktop Chrome:         {fig['first_desktop_ms']:7.1f} ms")
    print(f"  first request, Android with a model:   {fig['first_android_ms']:7.1f} ms")
    print(f"  warm request, desktop (new UA each):   {fig['warm_desktop_ms']:7.1f} ms")
    print(f"  warm request, Android (new UA each):   {fig['warm_android_ms']:7.1f} ms")
    print(
        f"cold extra, desktop (import + first - warm): {extra_desktop:.0f} ms  (goal <= {GOAL_MS:.0f})"
    )
    print(
        f"cold extra, Android (first - warm):          {extra_android:.0f} ms  (goal <= {GOAL_MS:.0f})"
    )
    print(f"import app (python -X importtime, cumulative): {importtime_ms:.0f} ms")
    print(
        f"not included above: boto3 in Lambda's first request (fresh process): import boto3 "
        f"{boto_import_ms:.0f} ms + boto3.client('dynamodb') {boto_client_ms:.0f} ms"
    )
    print(
        "BENCH "
        + json.dumps(
            {
                "bench": "cold_start",
                "runs": n,
                "import_app_ms": round(fig["import_ms"], 1),
                "first_desktop_ms": round(fig["first_desktop_ms"], 1),
                "first_android_ms": round(fig["first_android_ms"], 1),
                "warm_desktop_ms": round(fig["warm_desktop_ms"], 2),
                "warm_android_ms": round(fig["warm_android_ms"], 2),
                "cold_extra_desktop_ms": round(extra_desktop, 1),
                "cold_extra_android_ms": round(extra_android, 1),
                "importtime_app_ms": round(importtime_ms, 1),
                "boto3_import_ms": round(boto_import_ms, 1),
                "boto3_client_ms": round(boto_client_ms, 1),
                "boto3_included": False,
            }
        )
    )
    return 0 if extra_desktop <= GOAL_MS and extra_android <= GOAL_MS else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        probe(int(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
