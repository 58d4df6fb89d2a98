"""``vts close-days`` and ``vts replay``: the daily close on demand, and a realistic replay
through the real handlers that checks the closed Days against the truth."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

Command = Callable[[argparse.Namespace], int]


def _fail(message: str, code: int = 2) -> int:
    print(f"vts: error: {message}", file=sys.stderr)
    return code


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Command],
) -> None:
    close = sub.add_parser(
        "close-days", help="close every finished Day past the watermark, exactly (as close_days)"
    )
    close.add_argument("--through", type=_day, help="close no Day after this one (YYYY-MM-DD)")
    commands["close-days"] = cmd_close_days

    replay = sub.add_parser(
        "replay",
        help="replay a realistic trace through the real handlers, pump, close, check the truth",
    )
    replay.add_argument("--looks", type=int, default=50_000, help="looks to generate (50000)")
    replay.add_argument("--days", type=int, default=3, help="Days the trace spans (3)")
    replay.add_argument("--posts", type=int, default=150, help="posts (150)")
    replay.add_argument("--artists", type=int, default=30, help="artists (30)")
    replay.add_argument("--seed", type=int, default=7, help="random seed (7)")
    replay.add_argument("--start", type=_day, help="first Day of the trace (default: Days ago)")
    replay.add_argument("--trace", type=Path, help="replay this JSONL trace instead of generating")
    replay.add_argument("--save-trace", type=Path, help="write the trace as JSONL here")
    replay.add_argument(
        "--batch-size", type=int, default=100, help="stream batch size, as Lambda's BatchSize (100)"
    )
    replay.add_argument(
        "--pump-every",
        type=float,
        default=300.0,
        help="seconds of trace time between stream pumps and scheduler runs (300)",
    )
    replay.add_argument(
        "--fast",
        action="store_true",
        help="write raw events with BatchWriteItem and keep the registry in memory "
        "(the recorder, pump, aggregate and close stay the real ones)",
    )
    commands["replay"] = cmd_replay


# ---- close-days -----------------------------------------------------------------------------


def cmd_close_days(args: argparse.Namespace) -> int:
    from chalicelib.config import get_settings
    from chalicelib.errors import VTSError
    from chalicelib.wiring import dynamodb_services
    from vtsops.progress import bar

    try:
        services = dynamodb_services(get_settings())
        closer = services.day_closer
        now = services.clock.now()
        pending = closer.pending_days(now, args.through)
        if not pending:
            print(f"nothing to close (watermark {services.aggregates.watermark()})")
            return 0
        with bar(len(pending), f"closing {pending[0]}..{pending[-1]}") as advance:
            report = closer.run(now, args.through, progress=lambda done, _total: advance(done))
    except VTSError as error:
        return _fail(error.message, 1)
    _print_close(report.as_dict())
    return 0 if report.stopped is None else 3


def _print_close(report: dict[str, Any]) -> None:
    days = report["closed_days"]
    span = f"{days[0]}..{days[-1]}" if days else "none"
    print(
        f"closed {len(days)} Day(s) ({span}): {report['posts']} post-days, "
        f"{report['events']} raw events recounted, {report['writes']} items written; "
        f"watermark {report['watermark']}"
    )
    if report["stopped"]:
        print(f"stopped: {report['stopped']} ({report['pending_days']} Day(s) left; run it again)")


# ---- replay ---------------------------------------------------------------------------------


@contextmanager
def _dynamodb_endpoint() -> Iterator[str]:
    """The running stack's moto when there is one, else a moto of our own."""
    from vtsops.stack import MotoComponent, free_port

    endpoint = os.environ.get("VTS_DYNAMODB_ENDPOINT")
    if endpoint and _answers(endpoint):
        yield endpoint
        return
    if endpoint:
        print(f"no DynamoDB answers at {endpoint} (stack stopped?): starting a moto of our own")

    moto = MotoComponent(free_port())
    moto.start()
    try:
        yield moto.endpoint
    finally:
        moto.stop()


def _answers(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 2):
            return True
    except OSError:
        return False


def cmd_replay(args: argparse.Namespace) -> int:
    from vtsops.replay import Trace, generate_trace

    if args.trace is not None:
        if not args.trace.exists():
            return _fail(f"{args.trace} does not exist")
        trace = Trace.from_jsonl(args.trace)
    else:
        if args.looks < 1 or args.days < 1 or args.posts < 1 or args.artists < 1:
            return _fail("--looks, --days, --posts and --artists must be positive")
        start = (
            date.fromisoformat(args.start)
            if args.start
            else (datetime.now(UTC).date() - timedelta(days=args.days + 1))
        )
        trace = generate_trace(
            looks=args.looks,
            days=args.days,
            posts=args.posts,
            artists=args.artists,
            start=start,
            seed=args.seed,
        )
    if not trace.looks:
        return _fail("the trace is empty")
    if args.save_trace is not None:
        trace.to_jsonl(args.save_trace)
        print(f"trace written to {args.save_trace} ({len(trace.looks)} looks)")
    if not 1 <= args.batch_size <= 10_000:
        return _fail("--batch-size must be between 1 and 10000")
    with _dynamodb_endpoint() as endpoint:
        return _replay(trace, endpoint, args)


def _replay(trace: Any, endpoint: str, args: argparse.Namespace) -> int:
    from chalicelib.clock import FixedClock
    from chalicelib.config import get_settings
    from chalicelib.storage.memory import MemoryRegistry
    from chalicelib.storage.provision import ensure_tables
    from chalicelib.wiring import dynamodb_services, use
    from vtsops.progress import bar
    from vtsops.replay import BulkEventStore, Replayer, compare, ground_truth
    from vtsops.trigger_rollup import CloseScheduler, StreamPump

    prefix = f"vts-replay-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")  # moto's dummy
    settings = replace(
        get_settings(),
        dynamodb_endpoint=endpoint,
        events_table=f"{prefix}-events",
        aggregates_table=f"{prefix}-aggregates",
        registry_table=f"{prefix}-registry",
        drop_flush_s=10,
    )
    services = dynamodb_services(settings, clock=FixedClock(trace.looks[0].at))
    ensure_tables(services.client, settings.table_names())
    print(f"replaying {len(trace.looks)} looks over {len(trace.days)} Day(s) into {endpoint}")
    print(f"   tables {prefix}-{{events,aggregates,registry}}")
    bulk = None
    if args.fast:
        services.registry = MemoryRegistry()
        bulk = BulkEventStore(services.client, settings.events_table, settings.event_ttl_days)
    pump = StreamPump(settings, batch_size=args.batch_size, retries_per_cycle=5)
    scheduler = CloseScheduler()
    started = time.monotonic()
    with use(services), bar(len(trace.looks), "replaying looks") as advance:
        replayer = Replayer(
            services,
            trace,
            pump=pump.pump_once,
            close=scheduler.run_once,
            bulk=bulk,
            pump_every_s=args.pump_every,
        )
        stats = replayer.run(progress=advance)
    elapsed = time.monotonic() - started
    truth = ground_truth(trace, settings.impression_interval_s)
    problems = compare(services.aggregate_items, truth, trace.days)
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items()))
    print(f"recorded in {elapsed:.1f} s: {outcomes}")
    print(
        f"stream: {pump.totals.records} records in {pump.totals.batches} batches "
        f"({pump.totals.failures} failed); {stats.closes} scheduler runs; "
        f"watermark {services.aggregates.watermark()}"
    )
    checked = sum(len(truth.day_items(day)) for day in trace.days)
    if problems:
        print(f"MISMATCH: {len(problems)} differences from the truth ({checked} closed Days):")
        for line in problems[:20]:
            print(f"   {line}")
        return 1
    print(
        f"OK: all {checked} closed post, artist and site Days (with their TOTALs and blocks) "
        "equal the truth from the trace"
    )
    return 0
