#!/usr/bin/env python3
"""A bounded burst against the local stack: a fixed number of Views recorded over HTTP by
concurrent clients on 127.0.0.1, then the wait until the live counters show them.

Each request is ``POST /v1/posts/{id}/views`` (a ``text/plain`` beacon body, a browser
User-Agent) from a simulated visitor of its own, told apart by a distinct public address in
``X-Forwarded-For`` (the local stack, playing API Gateway, takes its first address as the
client's), spread evenly over the demo posts. Every client starts at the same moment (the
burst: all connections at once) and keeps its connection alive, or opens one per request
with ``--fresh-connections``. It stops after ``--views`` requests, then polls the public
counter of each post until the stream pump has brought every counted View (201) into it.

Reported: requests per second, latency, status codes, connection resets and other errors,
whether the counters grew by exactly the number of 201s, and how long that took to settle.

The stack is the one ``make run`` starts (scripts/local_stack.py), started here on free
ports without demo looks (the demo posts only) and stopped at the end, or a running one
(``--api URL``: it must have the demo posts; its counters are read before and after).
Everything is loopback and moto stands in for DynamoDB: a figure of this machine and this
harness (2 shared cores here), never of API Gateway, Lambda or DynamoDB.

Usage: python bench/bench_load.py [--views 6000] [--clients 64] [--api URL]
                                   [--fresh-connections] [--settle-timeout 300] [--seed N]
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from vtsops.seed import DEMO_POSTS, DEMO_UAS  # noqa: E402
from vtsops.stack import die_with_parent, free_port, interrupt  # noqa: E402

READY = re.compile(r"local stack ready at (http://\S+)")
POLL_S = 0.5


# ---- the stack ---------------------------------------------------------------------------


STACK_HOME = ROOT / ".vts" / "bench-load"  # this run's stack: settings, API log, output


@contextmanager
def own_stack(timeout_s: float = 240) -> Iterator[tuple[str, str]]:
    """scripts/local_stack.py on free ports with the demo posts and no demo looks. Its
    settings file, API log and output go to .vts/bench-load/ (the project's own .vts/local.env,
    a running `make run`'s, is left alone)."""
    STACK_HOME.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTS_")}
    for name in ("VTS_HTTP_PORT", "VTS_AWS_PORT", "VTS_MQTT_PORT"):
        env[name] = str(free_port())
    moto = f"http://127.0.0.1:{env['VTS_AWS_PORT']}"
    (STACK_HOME / ".vts" / "api.log").unlink(missing_ok=True)
    output = (STACK_HOME / "stack.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "local_stack.py"), "--looks", "0",
         "--home", str(STACK_HOME)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=die_with_parent,
    )
    lines: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.write(line)
            output.flush()
            lines.append(line.rstrip("\n"))
            match = READY.search(line)
            if match:
                found.append(match.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout_s) or not found:
            raise RuntimeError("the local stack did not start:\n" + "\n".join(lines[-20:]))
        yield found[0], moto
    finally:
        interrupt(process, 30)
        reader.join(5)
        output.close()
        warnings = [line for line in lines if "Traceback" in line or "rror" in line
                    or "WARNING" in line or "retrying" in line]
        if warnings:
            print(f"  the stack's output ({STACK_HOME / 'stack.log'}) has {len(warnings)} "
                  f"warning or error lines, e.g. {warnings[0]!r}")


# ---- the counters ------------------------------------------------------------------------


def counters(host: str, port: int, posts: list[int]) -> dict[int, int]:
    """Lifetime Views of each post from its public counter (no Content-Type on a GET)."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        views = {}
        for post_id in posts:
            connection.request("GET", f"/v1/posts/{post_id}/counter")
            answer = connection.getresponse()
            body = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"GET /v1/posts/{post_id}/counter answered {answer.status}: "
                                   f"{body[:200]!r} (the stack needs the demo posts)")
            views[post_id] = int(json.loads(body)["views"])
        return views
    finally:
        connection.close()


def steady_counters(host: str, port: int, posts: list[int], timeout_s: float = 120) -> dict[int, int]:
    """The counters once they stopped moving (a running stack may still pump its demo looks)."""
    deadline = time.monotonic() + timeout_s
    last = counters(host, port, posts)
    same = 0
    while same < 3 and time.monotonic() < deadline:
        time.sleep(1)
        now = counters(host, port, posts)
        same = same + 1 if now == last else 0
        last = now
    return last


def settle(
    host: str, port: int, baseline: dict[int, int], expected: Counter[int], timeout_s: float,
    stable_s: float = 30,
) -> tuple[bool, float, dict[int, int]]:
    """Poll until every counter grew by exactly its 201s; give up after ``timeout_s``, or
    once they have not moved for ``stable_s`` without matching. (matched, seconds, growth)"""
    posts = sorted(baseline)
    started = time.monotonic()
    moved_at, last = started, None
    while True:
        now = counters(host, port, posts)
        growth = {p: now[p] - baseline[p] for p in posts}
        elapsed = time.monotonic() - started
        if all(growth[p] == expected.get(p, 0) for p in posts):
            return True, elapsed, growth
        if growth != last:
            moved_at, last = time.monotonic(), growth
        if elapsed > timeout_s or time.monotonic() - moved_at > stable_s:
            return False, elapsed, growth
        time.sleep(POLL_S)


def stream_diagnosis(moto: str, posts: list[int]) -> str:
    """What the events table's stream in moto holds: told when the counters do not match,
    to tell a stream record delivered twice from a View stored twice. moto numbers a
    shard's records as ``len(items)`` at each write, unlocked: two concurrent writes can get
    the same sequence number, and an iterator "after" it then hands the second record out
    again (a stream read that ends between the two)."""
    from chalicelib.config import Settings
    from chalicelib.wiring import dynamodb_client

    settings = Settings(dynamodb_endpoint=moto)
    table = dynamodb_client(settings).describe_table(TableName=settings.events_table)["Table"]
    streams = dynamodb_client(settings, "dynamodbstreams")
    arn = table["LatestStreamArn"]
    inserts: Counter[int] = Counter()
    numbers: dict[str, set[str]] = {}
    seen: set[str] = set()
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not answer["Records"]:
                break
            for record in answer["Records"]:
                if record["eventID"] in seen:
                    continue  # handed out again (the very thing told here)
                seen.add(record["eventID"])
                numbers.setdefault(record["dynamodb"]["SequenceNumber"], set()).add(
                    record["eventID"]
                )
                if record["eventName"] == "INSERT":
                    pk = record["dynamodb"]["Keys"]["pk"]["S"]  # P#{post}#{day}
                    inserts[int(pk.split("#")[1])] += 1
            iterator = answer.get("NextShardIterator")
    shared = sum(len(ids) - 1 for ids in numbers.values() if len(ids) > 1)
    return (f"moto's stream: {len(seen)} records, {shared} of them with a sequence number "
            f"another record has too; INSERTs by post {dict(sorted((p, inserts[p]) for p in posts))}")


# ---- the load ----------------------------------------------------------------------------


def visitor_addresses(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct public IPv4 addresses (one network, one Visitor each)."""
    seen: set[int] = set()
    out: list[str] = []
    while len(out) < count:
        value = rng.randrange(0x0B000000, 0xDF000000)  # 11.0.0.0 - 222.255.255.255
        if value in seen or not ipaddress.IPv4Address(value).is_global:
            continue
        seen.add(value)
        out.append(str(ipaddress.IPv4Address(value)))
    return out


def error_kind(error: BaseException) -> str:
    if isinstance(error, http.client.RemoteDisconnected):
        return "closed without an answer"
    if isinstance(error, ConnectionResetError):
        return "reset"
    if isinstance(error, BrokenPipeError):
        return "broken pipe"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, TimeoutError):
        return "timeout"
    return type(error).__name__


class Load:
    """``views`` requests from ``clients`` threads, all starting at once."""

    def __init__(
        self, host: str, port: int, posts: list[int], views: int, clients: int,
        *, fresh_connections: bool, rng: random.Random,
    ) -> None:
        self.host, self.port = host, port
        self.fresh_connections = fresh_connections
        self.clients = clients
        addresses = visitor_addresses(views, rng)
        # Request n: visitor n, post n mod posts (an even spread), a browser user agent.
        self.requests = [
            (posts[n % len(posts)], addresses[n], DEMO_UAS[n % len(DEMO_UAS)])
            for n in range(views)
        ]
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.counted: Counter[int] = Counter()  # 201s per post
        self.latencies_ms: list[float] = []
        self.connections = 0
        self._next = 0
        self._lock = threading.Lock()
        self._started = 0.0
        self.seconds = 0.0

    def _take(self) -> tuple[int, str, str] | None:
        with self._lock:
            if self._next >= len(self.requests):
                return None
            self._next += 1
            return self.requests[self._next - 1]

    def _client(self, barrier: threading.Barrier) -> None:
        connection: http.client.HTTPConnection | None = None
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        counted: Counter[int] = Counter()
        latencies: list[float] = []
        connections = 0
        barrier.wait()
        while (request := self._take()) is not None:
            post_id, address, user_agent = request
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                connections += 1
            began = time.perf_counter()
            try:
                connection.request(
                    "POST", f"/v1/posts/{post_id}/views", body=b"{}",
                    headers={"Content-Type": "text/plain", "User-Agent": user_agent,
                             "X-Forwarded-For": address},
                )
                answer = connection.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException) as error:
                errors[error_kind(error)] += 1
                connection.close()
                connection = None
                continue
            latencies.append((time.perf_counter() - began) * 1000)
            statuses[answer.status] += 1
            if answer.status == 201:
                counted[post_id] += 1
            if self.fresh_connections or answer.will_close:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()
        with self._lock:
            self.statuses.update(statuses)
            self.errors.update(errors)
            self.counted.update(counted)
            self.latencies_ms.extend(latencies)
            self.connections += connections

    def run(self) -> None:
        def go() -> None:
            self._started = time.perf_counter()

        barrier = threading.Barrier(self.clients, action=go)
        threads = [threading.Thread(target=self._client, args=(barrier,), daemon=True)
                   for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.seconds = time.perf_counter() - self._started


def quantile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[q - 1]


def run(args: argparse.Namespace, api: str, moto: str | None = None) -> dict[str, object]:
    parts = urlsplit(api)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"--api must be on loopback (127.0.0.1), not {host}")
    posts = list(range(1, DEMO_POSTS + 1))
    baseline = steady_counters(host, port, posts)
    rng = random.Random(args.seed)
    load = Load(host, port, posts, args.views, args.clients,
                fresh_connections=args.fresh_connections, rng=rng)
    load.run()
    matched, settle_s, growth = settle(host, port, baseline, load.counted, args.settle_timeout)
    answered = sum(load.statuses.values())
    errors = sum(load.errors.values())
    resets = load.errors.get("reset", 0) + load.errors.get("closed without an answer", 0)
    rate = args.views / load.seconds
    counted = sum(load.counted.values())
    mode = "one connection per request" if args.fresh_connections else "kept-alive connections"
    print(f"{args.views} Views from {args.clients} concurrent clients ({mode}, "
          f"{load.connections} connections) to {api}, over the {len(posts)} demo posts:")
    print(f"  {load.seconds:.1f} s -> {rate:.0f} requests/s; latency median "
          f"{quantile(load.latencies_ms, 50):.0f} ms, p90 {quantile(load.latencies_ms, 90):.0f} ms, "
          f"p99 {quantile(load.latencies_ms, 99):.0f} ms")
    print(f"  status codes {dict(sorted(load.statuses.items()))}; connection resets {resets}; "
          f"errors {dict(load.errors) or 0}")
    growth_total = sum(growth.values())
    if matched:
        print(f"  live counters: +{growth_total}, equal to the {counted} 201s, settled "
              f"{settle_s:.1f} s after the last answer")
    else:
        wrong = {p: (growth[p], load.counted.get(p, 0)) for p in posts
                 if growth[p] != load.counted.get(p, 0)}
        print(f"  live counters: +{growth_total} for {counted} 201s, NOT equal after "
              f"{settle_s:.1f} s; (grown, 201s) by post {wrong}")
        if moto:
            print(f"  {stream_diagnosis(moto, posts)}")
    return {
        "bench": "load", "views": args.views, "clients": args.clients,
        "fresh_connections": args.fresh_connections, "connections": load.connections,
        "seconds": round(load.seconds, 2), "requests_per_s": round(rate, 1),
        "latency_ms_median": round(quantile(load.latencies_ms, 50), 1),
        "latency_ms_p90": round(quantile(load.latencies_ms, 90), 1),
        "latency_ms_p99": round(quantile(load.latencies_ms, 99), 1),
        "answered": answered, "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "resets": resets, "errors": errors, "counted_201": counted,
        "counter_growth": growth_total, "counters_match": matched,
        "settle_s": round(settle_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=6000, help="requests in all (6000)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--api", help="a running local stack (http://127.0.0.1:PORT) instead "
                        "of one started here")
    parser.add_argument("--fresh-connections", action="store_true",
                        help="open a connection per request instead of keeping it alive")
    parser.add_argument("--settle-timeout", type=float, default=300,
                        help="seconds to wait for the counters (300)")
    parser.add_argument("--seed", type=int, help="the visitors' addresses (default: random, "
                        "so a second run against the same stack has new visitors)")
    args = parser.parse_args(argv)
    if args.views < 1 or not 1 <= args.clients <= 1024:
        parser.error("--views must be >= 1 and --clients between 1 and 1024")
    if args.api:
        figures = run(args, args.api.rstrip("/"))
    else:
        with own_stack() as (api, moto):
            figures = run(args, api, moto)
    print("BENCH " + json.dumps(figures))
    return 0 if figures["counters_match"] and not figures["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
