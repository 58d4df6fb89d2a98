#!/usr/bin/env python3
"""Cold start of the API Lambda: `python -X importtime -c "import app"` (cumulative µs of the
top-level import), plus what the first recording request imports lazily, measured the same
way, so the total a cold request pays is visible too."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
LAZY = "import app; import boto3, botocore.config; import chalicelib.enrich.device as d; d.classify('Mozilla/5.0'); import chalicelib.enrich.geo, chalicelib.ingest.web"


def import_ms(code: str, module: str) -> float:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    pattern = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|\s*" + re.escape(module) + r"$")
    for line in run.stderr.splitlines():
        match = pattern.search(line)
        if match:
            return int(match.group(1)) / 1000
    raise RuntimeError(f"no importtime line for {module}")


def total_ms(code: str) -> float:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t=time.perf_counter(); exec(compile(" + repr(code) + ", 's', 'exec'));"
            " print((time.perf_counter()-t)*1000)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(run.stdout.strip().splitlines()[-1])


def main() -> int:
    app_ms = statistics.median(import_ms("import app", "app") for _ in range(RUNS))
    first_ms = statistics.median(total_ms(LAZY) for _ in range(RUNS))
    print(
        f"import app (python -X importtime, cumulative, median of {RUNS}): {app_ms:.0f} ms  (goal <= 300 ms)"
    )
    print(
        f"import app + everything the first recording request loads, wall, median of {RUNS}: {first_ms:.0f} ms"
    )
    print(
        "BENCH "
        + json.dumps(
            {
                "bench": "cold_start",
                "import_app_ms": round(app_ms, 1),
                "first_request_imports_ms": round(first_ms, 1),
            }
        )
    )
    return 0 if app_ms <= 300 else 1


if __name__ == "__main__":
    sys.exit(main())
