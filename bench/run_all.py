#!/usr/bin/env python3
"""`make bench`: run every bench/bench_*.py, print their figures, optionally record them.

Usage: python bench/run_all.py [--record docs/BENCHMARKS.md] [NAME ...]

Every bench/bench_*.py is found by its name and run with its defaults, each recorded under
its command. Those that need a server start their own on free loopback ports and stop it:
bench_players (moto, the MQTT broker), bench_rollup (moto), bench_load (the whole local
stack, scripts/local_stack.py, hit by 64 concurrent HTTP clients), bench_wru (two moto
servers in their own processes: one recording the run's requests, one replaying them to
price each by DynamoDB's rules). bench_viral models DynamoDB's per-key limits in memory
instead, its two runs in parallel processes (about 3.5 minutes on 2 cores, 2.7 GB each).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--record", type=Path, help="write the figures to this Markdown file")
    args = parser.parse_args()
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    if args.names:
        wanted = {n.removeprefix("bench_").removesuffix(".py") for n in args.names}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        if not scripts:
            print(f"no benchmark named {', '.join(sorted(wanted))}", file=sys.stderr)
            return 2
    results: list[tuple[str, int, str, list[dict[str, object]]]] = []
    failed = 0
    for script in scripts:
        command = f"python bench/{script.name}"
        print(f"\n=== {command}", flush=True)
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, check=False
        )
        print(run.stdout, end="")
        if run.returncode:
            print(run.stderr[-3000:], end="", file=sys.stderr)
            failed += 1
        figures = [
            json.loads(line[6:]) for line in run.stdout.splitlines() if line.startswith("BENCH ")
        ]
        print(f"--- exit {run.returncode} after {time.monotonic() - started:.1f} s")
        results.append((command, run.returncode, run.stdout, figures))
    if args.record:
        _record(args.record, results)
        print(f"\nrecorded in {args.record}")
    return 1 if failed else 0


def _sections(path: Path) -> dict[str, str]:
    """The recorded sections of an existing file, by command (to update only some)."""
    if not path.exists():
        return {}
    sections: dict[str, str] = {}
    for chunk in path.read_text().split("\n## `")[1:]:
        command, _, rest = chunk.partition("`")
        sections[command] = "## `" + command + "`" + rest.rstrip() + "\n"
    return sections


def _record(path: Path, results: list[tuple[str, int, str, list[dict[str, object]]]]) -> None:
    previous = _sections(path)
    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (which runs `python bench/run_all.py --record docs/BENCHMARKS.md`)",
        f"on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, "
        f"{_cores()} cores. moto over loopback stands in for DynamoDB: its latencies are "
        "harness overhead, never DynamoDB figures; request units are computed from item sizes.",
        "",
    ]
    fresh = {command: (code, stdout) for command, code, stdout, _ in results}
    for command in sorted(set(previous) | set(fresh)):
        if command in fresh:
            code, stdout = fresh[command]
            when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
            lines += [f"## `{command}`", "", f"exit {code}, run {when}", "", "```",
                      stdout.rstrip(), "```", ""]
        else:
            lines += [previous[command]]
    path.write_text("\n".join(lines))


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
