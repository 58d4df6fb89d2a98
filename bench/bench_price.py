#!/usr/bin/env python3
"""The bill: dollars per month and per million web Views / player reports, all in.

Every quantity is measured by running the real handlers over the in-memory adapters
(``chalicelib.wiring.memory_services``), with ``AWS_LAMBDA_FUNCTION_NAME`` set so the EMF
sinks write to stdout as in Lambda:

* the front door: the real Chalice app called with REST API proxy events (POST
  /v1/posts/{id}/views) for looks of a replay trace: handler CPU (``time.process_time``),
  the bytes of stdout (EMF) and log records it writes, the answer's bytes;
* players: the real ``player_views`` handler on IoT rule events (bench_players' reports):
  CPU, log bytes, acks published, payload size (IoT bills per 5 KB);
* DynamoDB units: the trace through the recorder, the real ``aggregate`` handler (batches
  as the deployed mapping fills them at each pace: BatchSize 1000, 10 s window) and the
  real close, over bench_rollup's metering stores (record + guards + live + close);
* the stream function's CPU per batch and the close's CPU, by ``time.process_time``;
* a dashboard view: one PostStats request over the metered aggregates (RRU, CPU);
* storage: raw events kept ``event_ttl_days`` (+100 B of DynamoDB overhead per item),
  aggregates as accumulated over a year at the measured bytes per look.

Lambda's billed duration is taken as the measured CPU time rounded up to 1 ms per
invocation (the CPU figure): a deployed function also waits on DynamoDB, so a sensitivity
line adds an assumed wait per invocation. Prices are in ``PRICES`` (us-east-1).

Usage: python bench/bench_price.py [--looks N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts", ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_rollup import (  # noqa: E402
    DEPLOYED_BATCH,
    DEPLOYED_WINDOW_S,
    HourlyClose,
    Meter,
    MeteredDrops,
    MeteredEvents,
    MeteredRegistry,
    metered_services,
)
from build_template import LOG_LEVEL_PARAMETER  # noqa: E402
from vtsops.replay import MemoryPump, Replayer, Trace, generate_trace  # noqa: E402

from chalicelib.clock import FixedClock  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.model import PostRecord  # noqa: E402
from chalicelib.storage import codec  # noqa: E402
from chalicelib.storage.memory import MemoryRegistry  # noqa: E402
from chalicelib.wiring import Services, memory_services, use  # noqa: E402

# ---- prices -------------------------------------------------------------------------------
# us-east-1, on-demand list prices as known in Dec 2026 from AWS's public pricing pages
# (written from those pages' published figures, not fetched by this script; first tier of
# each, no free tier, x86 Lambda). Name -> (USD per unit, unit, source).
PRICES_AS_OF = "2026-12 (us-east-1, public AWS pricing pages as known; first tiers, no free tier)"
PRICES: dict[str, tuple[float, str, str]] = {
    "rest_api_request": (3.50e-6, "request", "https://aws.amazon.com/api-gateway/pricing/"),
    "http_api_request": (1.00e-6, "request (per 512 KB)", "https://aws.amazon.com/api-gateway/pricing/"),
    "lambda_request": (0.20e-6, "invocation", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_s": (0.0000166667, "GB-second (x86)", "https://aws.amazon.com/lambda/pricing/"),
    "ddb_wru": (0.625e-6, "write request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "ddb_rru": (0.125e-6, "read request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "ddb_storage": (0.25, "GB-month", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "iot_message": (1.00e-6, "message (per 5 KB)", "https://aws.amazon.com/iot-core/pricing/"),
    "iot_rule": (0.15e-6, "rule triggered", "https://aws.amazon.com/iot-core/pricing/"),
    "iot_action": (0.15e-6, "action executed", "https://aws.amazon.com/iot-core/pricing/"),
    "logs_ingest": (0.50, "GB ingested", "https://aws.amazon.com/cloudwatch/pricing/"),
    "logs_storage": (0.03, "GB-month archived", "https://aws.amazon.com/cloudwatch/pricing/"),
    "cw_metric": (0.30, "custom metric-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "cw_alarm": (0.10, "standard alarm-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "data_out": (0.09, "GB out to the internet", "https://aws.amazon.com/ec2/pricing/on-demand/"),
    # Optional (WafEnabled): shown apart, not in the totals.
    "waf_request": (0.60e-6, "request inspected", "https://aws.amazon.com/waf/pricing/"),
    "waf_acl": (5.00, "web ACL-month", "https://aws.amazon.com/waf/pricing/"),
    "waf_rule": (1.00, "rule-month", "https://aws.amazon.com/waf/pricing/"),
}

# The functions' memory (.chalice/config.json; build_template.py keeps it).
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
MEMORY_MB = {name: int(f["lambda_memory_size"]) for name, f in CONFIG["lambda_functions"].items()}
LOG_RETENTION_DAYS = 30  # build_template.py: RetentionInDays of every log group
# START, END and REPORT lines per invocation (~300 bytes), unless the template's default
# system log level (scripts/build_template.py) keeps Lambda from writing them.
LAMBDA_PLATFORM_LOG_BYTES = (
    0 if LOG_LEVEL_PARAMETER["LambdaSystemLogLevel"]["Default"] == "WARN" else 300
)
HTTP_OVERHEAD_BYTES = 250  # status line and API Gateway's own headers on each answer
DYNAMO_ITEM_OVERHEAD = 100  # DynamoDB bills 100 B of overhead per stored item
ASSUMED_IO_WAIT_MS = 10  # the sensitivity line only: DynamoDB waits per invocation
AGGREGATE_MONTHS_KEPT = 12  # aggregates are kept; price a year of them
SECONDS_PER_MONTH = 30 * 86_400
GB = 1024**3
GOAL_PER_MILLION = 2.00
PACES: dict[str, float] = {
    "Makapix today (300/day)": 300 / 86_400,
    "1 look/s": 1.0,
    "100 looks/s": 100.0,
    "1,000 looks/s": 1_000.0,
}


def price(name: str) -> float:
    return PRICES[name][0]


def door_price(door: str) -> float:
    """$ per request at the front door: ``rest`` (Chalice's REST API), ``http`` (the HTTP API)
    or ``url`` (the function URL: no charge of its own, only the Lambda invocation every door
    pays; docs/deploy.md "Two front doors")."""
    return {"rest": price("rest_api_request"), "http": price("http_api_request"), "url": 0.0}[door]


def records_per_batch(looks_per_s: float) -> float:
    """How many records the deployed mapping puts in a batch at this pace (at least one)."""
    return max(1.0, min(float(DEPLOYED_BATCH), looks_per_s * DEPLOYED_WINDOW_S))


# ---- capture: stdout and log records, as CloudWatch Logs receives them ------------------


class LambdaLogs:
    """Counts the bytes a Lambda function would send to CloudWatch Logs: stdout (EMF lines,
    prints, plain text) and log records in the Python runtime's JSON format."""

    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.records = io.StringIO()
        self.metric_names: set[str] = set()
        handler = logging.StreamHandler(self.records)
        handler.setFormatter(
            # The Python runtime's JSON log format (the template sets LogFormat JSON).
            logging.Formatter(
                '{"timestamp":"%(asctime)s.000Z","level":"%(levelname)s","message":"%(message)s",'
                '"logger":"%(name)s","requestId":"' + "0" * 36 + '"}'
            )
        )
        self._handler = handler

    @contextlib.contextmanager
    def capture(self) -> Any:
        root = logging.getLogger()
        previous_level = root.level
        root.addHandler(self._handler)
        root.setLevel(logging.INFO)  # ApplicationLogLevel INFO in the template (JSON format)
        try:
            with contextlib.redirect_stdout(self.stdout):
                yield self
        finally:
            root.removeHandler(self._handler)
            root.setLevel(previous_level)

    def take(self) -> int:
        """Bytes written since the last take (and remember the EMF metric names)."""
        text = self.stdout.getvalue() + self.records.getvalue()
        for line in self.stdout.getvalue().splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                for block in doc.get("_aws", {}).get("CloudWatchMetrics", []):
                    self.metric_names.update(m["Name"] for m in block.get("Metrics", []))
        for buffer in (self.stdout, self.records):
            buffer.seek(0)
            buffer.truncate()
        return len(text.encode())


@contextlib.contextmanager
def in_lambda(name: str) -> Any:
    before = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
        else:
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = before


class Context:
    def __init__(self, name: str) -> None:
        self.function_name = name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = MEMORY_MB.get(name, 128)

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def settings_for_bench() -> Settings:
    return Settings(jwt_secret="bench-" * 8, visitor_key="bench-visitor-key")


# ---- the front door: the real app on REST API proxy events ------------------------------


def rest_event(post_id: int, body: bytes, ua: str, ip: str) -> dict[str, Any]:
    path = f"/v1/posts/{post_id}/views"
    headers = {
        "content-type": "application/json",
        "user-agent": ua,
        "origin": "https://makapix.club",
        "host": "vts.example.org",
    }
    return {
        "resource": "/v1/posts/{post_id}/views",
        "path": path,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"post_id": str(post_id)},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/v1/posts/{post_id}/views",
            "httpMethod": "POST",
            "path": "/api" + path,
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": ip, "userAgent": ua},
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def look_body(look: Any) -> bytes:
    fields = {"intent": look.intent, "source": look.source, "channel": look.channel,
              "referrer": look.referrer}
    return json.dumps({k: v for k, v in fields.items() if v is not None}).encode()


def measure_front_door(trace: Trace, requests: int, warmup: int) -> dict[str, Any]:
    """CPU, log bytes and answer bytes per recording request through the real app."""
    from app import app

    clock = FixedClock(trace.looks[0].at)
    services = memory_services(settings_for_bench(), clock=clock)
    for post_id, artist in trace.posts.items():
        MemoryRegistry.put_post(services.registry, PostRecord(post_id, artist, clock.at))
    looks = trace.looks[: warmup + requests]
    events = [rest_event(lk.post, look_body(lk), lk.ua, lk.ip) for lk in looks]
    logs = LambdaLogs()
    statuses: Counter[int] = Counter()
    answer_bytes = 0
    cpu = 0.0
    with in_lambda("vts-api_handler"), use(services), logs.capture():
        for n, (look, event) in enumerate(zip(looks, events, strict=True)):
            clock.at = look.at
            if n == warmup:
                logs.take()
            started = time.process_time()
            answer = app(event, Context("api_handler"))
            spent = time.process_time() - started
            if n >= warmup:
                cpu += spent
                statuses[answer["statusCode"]] += 1
                answer_bytes += len(answer.get("body") or "") + sum(
                    len(k) + len(str(v)) + 4 for k, v in (answer.get("headers") or {}).items()
                )
        services.drops.flush()  # the container's last metrics line too
        log_bytes = logs.take()
    return {
        "requests": requests,
        "cpu_s": cpu / requests,
        "log_bytes": log_bytes / requests,
        "answer_bytes": answer_bytes / requests + HTTP_OVERHEAD_BYTES,
        "statuses": dict(sorted(statuses.items())),
        "metric_names": sorted(logs.metric_names),
    }


# ---- players: the real player_views handler -----------------------------------------------


class CountingAcks:
    def __init__(self) -> None:
        self.published = 0
        self.bytes = 0

    def publish(self, topic: str, payload: bytes) -> None:
        self.published += 1
        self.bytes += len(payload)


def measure_players(reports: int, warmup: int) -> dict[str, Any]:
    """CPU, log bytes, acks and raw-event units per player report (accepted path mix of
    bench_players: 30 % Views, 70 % Impressions, each player within its rate)."""
    from bench_players import POSTS, event_for, report_payload

    from app import player_views

    def build(metered: Meter | None) -> tuple[Services, CountingAcks, list[dict[str, Any]], list[int]]:
        clock = FixedClock(datetime(2026, 11, 24, 10, tzinfo=UTC))
        settings = settings_for_bench()
        services = memory_services(settings, clock=clock)
        if metered is not None:
            services.events = MeteredEvents(metered, settings.event_ttl_days)
            services.registry = MeteredRegistry(metered)
            services.drop_store = MeteredDrops(metered)
        acks = CountingAcks()
        services.acks = acks  # type: ignore[misc]
        for post_id in range(1, POSTS + 1):
            services.posts.register(post_id, f"artist-{post_id % 3}")
        keys = [str(uuid.uuid4()) for _ in range(warmup + reports)]
        for n, key in enumerate(keys):
            services.players.register(key, f"owner-{n}", "BR")
        payloads = [report_payload(k, n) for n, k in enumerate(keys)]
        events = [
            event_for(k, p, 1_795_514_400_000 + n)
            for n, (k, p) in enumerate(zip(keys, payloads, strict=True))
        ]
        return services, acks, events, [len(p) for p in payloads]

    # CPU and logs, unmetered.
    services, acks, events, sizes = build(None)
    logs = LambdaLogs()
    outcomes: Counter[str] = Counter()
    cpu = 0.0
    clock = services.clock
    assert isinstance(clock, FixedClock)
    with in_lambda("vts-player_views"), use(services), logs.capture():
        for n, event in enumerate(events):
            clock.advance(0.05)
            if n == warmup:
                logs.take()
                acks.published = acks.bytes = 0
            started = time.process_time()
            outcome = player_views(event, Context("player_views"))
            spent = time.process_time() - started
            if n >= warmup:
                cpu += spent
                outcomes[outcome["outcome"]] += 1
        services.drops.flush()  # the container's last metrics line too
        log_bytes = logs.take()
    acks_per = acks.published / reports
    ack_bytes = acks.bytes / max(1, acks.published)
    # Units, metered (the stored events feed the stream like the web's).
    meter = Meter()
    services, _, events, _ = build(meter)
    metered_clock = services.clock
    assert isinstance(metered_clock, FixedClock)
    with use(services), contextlib.redirect_stdout(io.StringIO()):
        for event in events[warmup:]:
            metered_clock.advance(0.05)
            player_views(event, Context("player_views"))
    stored = outcomes.get("counted", 0) + outcomes.get("impression", 0)
    return {
        "reports": reports,
        "cpu_s": cpu / reports,
        "log_bytes": log_bytes / reports,
        "payload_bytes": sum(sizes) / len(sizes),
        "acks": acks_per,
        "ack_bytes": ack_bytes,
        "record_wru": meter.total_wru("record") / reports,
        "record_rru": sum(meter.rru.values()) / reports,
        "stored": stored / reports,
        "outcomes": dict(sorted(outcomes.items())),
        "metric_names": sorted(logs.metric_names),
    }


# ---- DynamoDB units and the stream/close functions at a pace ------------------------------


def measure_pipeline(trace: Trace, per_batch: float, dashboard: bool = False) -> dict[str, Any]:
    """The trace through recorder -> stream (batches of about ``per_batch`` records) ->
    the real aggregate handler -> the real hourly close, metered."""
    from app import aggregate

    meter = Meter()
    settings = settings_for_bench()
    services, stream = metered_services(trace, meter, settings)
    pump = MemoryPump(stream, aggregate, batch_size=DEPLOYED_BATCH)
    trace_rate = len(trace.looks) / (len(trace.days) * 86_400)
    window_s = max(1.0, per_batch / trace_rate)
    logs = LambdaLogs()
    cpu = Counter[str]()
    log_bytes = Counter[str]()

    def timed(name: str, work: Any) -> Any:
        def run() -> Any:
            with in_lambda(f"vts-{name}"):
                logs.take()
                started = time.process_time()
                try:
                    return meter.in_phase(name, work)()
                finally:
                    cpu[name] += time.process_time() - started
                    log_bytes[name] += logs.take()

        return run

    hourly_close = HourlyClose(services)

    replayer = Replayer(
        services,
        trace,
        pump=timed("aggregate", pump.pump_once),
        close=timed("close", hourly_close),
        pump_every_s=window_s,
    )
    with use(services), logs.capture():
        replayer.register_posts = lambda: None  # type: ignore[method-assign]
        logs.take()
        replayer.run()
        log_bytes["record"] += logs.take()
        timed("close", lambda: services.day_closer.run(services.clock.now()))()
        hourly_close.runs.append(services.clock.now())
    # The "close" phase name is the meter's too; the meter's "aggregate" phase is the live path.
    stored = len(stream.records)
    views = sum(1 for r in stream.records if r["dynamodb"]["Keys"]["sk"]["S"].startswith("V#"))
    raw_bytes = sum(int(r["dynamodb"]["SizeBytes"]) for r in stream.records)
    inner = services.aggregate_items.inner  # type: ignore[attr-defined]
    aggregate_bytes = sum(codec.item_size(i) + DYNAMO_ITEM_OVERHEAD for i in inner.items.values())
    rru_by_phase = Counter[str]()
    for (phase, _), units in meter.rru.items():
        rru_by_phase[phase] += units
    result: dict[str, Any] = {
        "looks": len(trace.looks),
        "stored": stored,
        "views": views,
        "days": len(trace.days),
        "records_per_batch": stored / max(1, pump.batches),
        "batches": pump.batches,
        "wru": {p: meter.total_wru(p) / stored for p in ("record", "aggregate", "close")},
        "rru": {p: rru_by_phase[p] / stored for p in ("record", "aggregate", "close")},
        "aggregate_cpu_s_per_batch": cpu["aggregate"] / max(1, pump.batches),
        "aggregate_log_bytes_per_batch": log_bytes["aggregate"] / max(1, pump.batches),
        "close_cpu_s_per_look": cpu["close"] / stored,
        "close_log_bytes_per_look": log_bytes["close"] / stored,
        "close_runs": len(hourly_close.runs),
        "raw_item_bytes": raw_bytes / max(1, stored) + DYNAMO_ITEM_OVERHEAD,
        "aggregate_bytes_per_look": aggregate_bytes / stored,
        "metric_names": sorted(logs.metric_names),
    }
    if dashboard:
        result["dashboard"] = measure_dashboard(services, meter, trace)
    return result


def measure_dashboard(services: Services, meter: Meter, trace: Trace) -> dict[str, Any]:
    """One PostStats request (default range) for the busiest posts, over the metered store."""
    from chalicelib.auth import Claims

    busiest = [p for p, _ in Counter(lk.post for lk in trace.looks).most_common(20)]
    before = sum(meter.rru.values())
    started = time.process_time()
    with use(services):
        for post_id in busiest:
            services.stats.post_stats(Claims(sub="bench", role="admin"), str(post_id), {})
    cpu = time.process_time() - started
    return {"rru": (sum(meter.rru.values()) - before) / len(busiest), "cpu_s": cpu / len(busiest)}


# ---- pricing ------------------------------------------------------------------------------


def gb_s(cpu_s: float, function: str) -> float:
    """Billed GB-s of one invocation: duration rounded up to 1 ms, at the function's memory."""
    billed = math.ceil(max(cpu_s, 1e-9) * 1000) / 1000
    return billed * MEMORY_MB[function] / 1024


@dataclass
class Measured:
    front: dict[str, Any]
    players: dict[str, Any]
    paces: dict[str, dict[str, Any]]  # pace name -> measure_pipeline result
    alarms: int


def price_web(m: Measured, pace: str, looks_per_s: float, door: str = "rest",
              io_wait_ms: float = 0.0) -> dict[str, float]:
    """$ per month, item by item, for web looks at ``looks_per_s``."""
    p = m.paces[pace]
    f = m.front
    looks = looks_per_s * SECONDS_PER_MONTH
    stored = looks * p["stored"] / p["looks"]
    per_batch = records_per_batch(looks_per_s)
    batches = stored / per_batch
    wait = io_wait_ms / 1000
    close_invocations = SECONDS_PER_MONTH / 3600
    lambda_requests = looks + batches + close_invocations
    lambda_gb_s = (
        looks * gb_s(f["cpu_s"] + wait, "api_handler")
        + batches * gb_s(p["aggregate_cpu_s_per_batch"] * per_batch / p["records_per_batch"] + wait,
                         "aggregate")
        + close_invocations * gb_s(wait, "close_days")
        + stored * p["close_cpu_s_per_look"] * MEMORY_MB["close_days"] / 1024
    )
    log_bytes = (
        looks * (f["log_bytes"] + LAMBDA_PLATFORM_LOG_BYTES)
        + batches * (p["aggregate_log_bytes_per_batch"] + LAMBDA_PLATFORM_LOG_BYTES)
        + close_invocations * LAMBDA_PLATFORM_LOG_BYTES
        + stored * p["close_log_bytes_per_look"]
    )
    wru = stored * sum(p["wru"].values())
    rru = stored * sum(p["rru"].values())
    raw_gb = looks_per_s * p["stored"] / p["looks"] * 86_400 * 35 * p["raw_item_bytes"] / GB
    aggregate_gb = stored * AGGREGATE_MONTHS_KEPT * p["aggregate_bytes_per_look"] / GB
    metrics = set(f["metric_names"]) | set(p["metric_names"]) | set(m.players["metric_names"])
    return {
        "front door": looks * door_price(door),
        "Lambda requests": lambda_requests * price("lambda_request"),
        "Lambda GB-s": lambda_gb_s * price("lambda_gb_s"),
        "DynamoDB writes": wru * price("ddb_wru"),
        "DynamoDB reads": rru * price("ddb_rru"),
        "DynamoDB storage": (raw_gb + aggregate_gb) * price("ddb_storage"),
        "CloudWatch Logs": log_bytes / GB * price("logs_ingest")
        + log_bytes / GB * LOG_RETENTION_DAYS / 30 * price("logs_storage"),
        "CloudWatch metrics+alarms": len(metrics) * price("cw_metric")
        + m.alarms * price("cw_alarm"),
        "data transfer out": looks * f["answer_bytes"] / GB * price("data_out"),
    }


def price_players_per_million(m: Measured, pace: str, looks_per_s: float) -> dict[str, float]:
    """$ per million player reports (their stored looks go through the same stream)."""
    pl = m.players
    p = m.paces[pace]
    n = 1_000_000
    stored = n * pl["stored"]
    per_batch = records_per_batch(looks_per_s)
    live_gb_s = stored / per_batch * gb_s(
        p["aggregate_cpu_s_per_batch"] * per_batch / p["records_per_batch"], "aggregate")
    messages = n * math.ceil(pl["payload_bytes"] / 5120) + n * pl["acks"] * math.ceil(
        max(1, pl["ack_bytes"]) / 5120)
    log_bytes = n * (pl["log_bytes"] + LAMBDA_PLATFORM_LOG_BYTES) + stored / per_batch * (
        p["aggregate_log_bytes_per_batch"] + LAMBDA_PLATFORM_LOG_BYTES
    ) + stored * p["close_log_bytes_per_look"]
    raw_gb_month = stored * 35 / 30 * p["raw_item_bytes"] / GB
    return {
        "IoT messages": messages * price("iot_message"),
        "IoT rules+actions": n * (price("iot_rule") + price("iot_action")),
        "Lambda requests": (n + stored / per_batch) * price("lambda_request"),
        "Lambda GB-s": (n * gb_s(pl["cpu_s"], "player_views") + live_gb_s
                        + stored * p["close_cpu_s_per_look"] * MEMORY_MB["close_days"] / 1024)
        * price("lambda_gb_s"),
        "DynamoDB writes": (n * pl["record_wru"] + stored * (p["wru"]["aggregate"] + p["wru"]["close"]))
        * price("ddb_wru"),
        "DynamoDB reads": (n * pl["record_rru"] + stored * (p["rru"]["aggregate"] + p["rru"]["close"]))
        * price("ddb_rru"),
        "DynamoDB storage": (raw_gb_month + stored * AGGREGATE_MONTHS_KEPT
                             * p["aggregate_bytes_per_look"] / GB) * price("ddb_storage"),
        "CloudWatch Logs": log_bytes / GB * (price("logs_ingest") + price("logs_storage")),
    }


def price_dashboard_view(m: Measured, pace: str, door: str = "rest") -> dict[str, float]:
    d = m.paces[pace]["dashboard"]
    return {
        "front door": door_price(door),
        "Lambda requests": price("lambda_request"),
        "Lambda GB-s": gb_s(d["cpu_s"], "api_handler") * price("lambda_gb_s"),
        "DynamoDB reads": d["rru"] * price("ddb_rru"),
        "CloudWatch Logs": LAMBDA_PLATFORM_LOG_BYTES / GB * price("logs_ingest"),
    }


def summary(items: dict[str, float], looks_per_month: float) -> dict[str, Any]:
    total = sum(items.values())
    biggest = max(items, key=lambda k: items[k])
    return {
        "items": items,
        "total": total,
        "per_million": total / looks_per_month * 1_000_000 if looks_per_month else 0.0,
        "biggest": biggest,
    }


def pace_scenario(name: str) -> str:
    """Which measured pipeline run stands for a pace: the low trace for Makapix today, the
    10-records batching for 1/s, full batches for 100/s and 1,000/s."""
    rate = PACES[name]
    if rate < 0.1:
        return "low"
    return "full" if records_per_batch(rate) >= DEPLOYED_BATCH else f"batch{records_per_batch(rate):g}"


# ---- main ---------------------------------------------------------------------------------


def count_alarms() -> int:
    text = "".join(p.read_text() for p in (ROOT / "infra").rglob("*.yaml"))
    template = (ROOT / "scripts" / "build_template.py").read_text()
    return text.count("AWS::CloudWatch::Alarm") + template.count("AWS::CloudWatch::Alarm")


def measure(looks: int, front_requests: int, reports: int, low_looks: int) -> Measured:
    trace = generate_trace(looks=looks, days=3, posts=150, artists=30, seed=7)
    low = generate_trace(looks=low_looks, days=3, posts=150, artists=30, seed=7)
    front = measure_front_door(trace, front_requests, warmup=min(500, front_requests))
    players = measure_players(reports, warmup=min(300, reports))
    paces: dict[str, dict[str, Any]] = {}
    for name in PACES:
        key = pace_scenario(name)
        if key in paces:
            continue
        source = low if key == "low" else trace
        paces[key] = measure_pipeline(source, records_per_batch(PACES[name]),
                                      dashboard=key == "full")
    return Measured(front, players, paces, count_alarms())


def report(m: Measured) -> dict[str, Any]:
    f, pl = m.front, m.players
    full = m.paces["full"]
    print(f"prices: {PRICES_AS_OF}")
    for name, (usd, unit, url) in PRICES.items():
        print(f"  {name:<18} ${usd:<12.10g} per {unit:<24} {url}")
    print(f"memory: {MEMORY_MB} MB; logs kept {LOG_RETENTION_DAYS} days; "
          f"+{LAMBDA_PLATFORM_LOG_BYTES} B START/END/REPORT per invocation (system log level "
          f"{LOG_LEVEL_PARAMETER['LambdaSystemLogLevel']['Default']})")
    print("\nmeasured (real handlers, in-memory adapters, AWS_LAMBDA_FUNCTION_NAME set):")
    print(f"  front door: {f['requests']} POST /views through the app: CPU {f['cpu_s'] * 1e6:.0f} µs, "
          f"logs {f['log_bytes']:.0f} B, answer {f['answer_bytes']:.0f} B per request; {f['statuses']}")
    print(f"  players: {pl['reports']} reports: CPU {pl['cpu_s'] * 1e6:.0f} µs, logs "
          f"{pl['log_bytes']:.0f} B, payload {pl['payload_bytes']:.0f} B, acks {pl['acks']:.2f}, "
          f"record {pl['record_wru']:.2f} WRU per report; {pl['outcomes']}")
    for key, p in m.paces.items():
        print(f"  pipeline {key:<9} {p['looks']} looks ({p['stored']} stored, {p['views']} Views), "
              f"{p['records_per_batch']:.1f} records/batch: WRU/stored look record "
              f"{p['wru']['record']:.2f} live {p['wru']['aggregate']:.2f} close "
              f"{p['wru']['close']:.2f}; RRU {sum(p['rru'].values()):.2f}; aggregate "
              f"{p['aggregate_cpu_s_per_batch'] * 1e3:.2f} ms CPU and "
              f"{p['aggregate_log_bytes_per_batch']:.0f} B logs per batch; close "
              f"{p['close_cpu_s_per_look'] * 1e6:.0f} µs CPU per look")
    print(f"  raw event item {full['raw_item_bytes']:.0f} B stored (kept 35 days); aggregates "
          f"{full['aggregate_bytes_per_look']:.0f} B per stored look (a year kept); "
          f"EMF metric names {len(set(f['metric_names']) | set(full['metric_names']))}, "
          f"alarms {m.alarms}")

    rows: dict[str, dict[str, Any]] = {}
    for name, rate in PACES.items():
        looks_per_month = rate * SECONDS_PER_MONTH
        rest = summary(price_web(m, pace_scenario(name), rate, "rest"), looks_per_month)
        http = summary(price_web(m, pace_scenario(name), rate, "http"), looks_per_month)
        url = summary(price_web(m, pace_scenario(name), rate, "url"), looks_per_month)
        wait = summary(price_web(m, pace_scenario(name), rate, "http", ASSUMED_IO_WAIT_MS),
                       looks_per_month)
        players = summary(price_players_per_million(m, pace_scenario(name), rate), 1_000_000)
        p = m.paces[pace_scenario(name)]
        rows[name] = {"rate": rate, "rest": rest, "http": http, "url": url, "http_wait": wait,
                      "players": players, "views_per_look": p["views"] / p["looks"]}

    names = list(PACES)
    width = 18
    label = {n: "today, 300/day" if n.startswith("Makapix") else n for n in names}
    print("\nweb looks (one recording request each), $ per month; REST API front door:")
    print(f"  {'':<26}" + "".join(f"{label[n]:>{width}}" for n in names))
    for item in rows[names[0]]["rest"]["items"]:
        print(f"  {item:<26}" + "".join(
            f"{rows[n]['rest']['items'][item]:>{width}.2f}" for n in names))
    doors = (("rest", "REST API"), ("http", "HTTP API"), ("url", "function URL"))
    table: list[tuple[str, Callable[[dict[str, Any]], float], str]] = [
        *((f"total ({name})", lambda r, d=door: r[d]["total"], ".2f") for door, name in doors),
        *((f"$/M looks, {name}", lambda r, d=door: r[d]["per_million"], ".3f")
          for door, name in doors),
        ("$/M counted Views, HTTP", lambda r: r["http"]["per_million"] / r["views_per_look"], ".3f"),
        ("HTTP +10 ms wait, $/M", lambda r: r["http_wait"]["per_million"], ".3f"),
    ]
    for row_label, value, fmt in table:
        print(f"  {row_label:<26}" + "".join(f"{value(rows[n]):>{width}{fmt}}" for n in names))
    print(f"  {'biggest item (REST)':<26}" + "".join(
        f"{rows[n]['rest']['biggest'][:width - 1]:>{width}}" for n in names))
    print("\nper million player reports, $ (IoT Core front door):")
    print(f"  {'':<26}" + "".join(f"{label[n]:>{width}}" for n in names))
    for item in rows[names[0]]["players"]["items"]:
        print(f"  {item:<26}" + "".join(
            f"{rows[n]['players']['items'][item]:>{width}.3f}" for n in names))
    print(f"  {'total':<26}" + "".join(
        f"{rows[n]['players']['total']:>{width}.3f}" for n in names))
    print("  (acks: the simulated firmware asks for none; one asked for costs one more IoT"
          " message, +$1.00 per million reports)")
    waf = 100 * SECONDS_PER_MONTH * price("waf_request") + price("waf_acl") + price("waf_rule")
    print(f"\noptional WAF (WafEnabled, one rate rule), not in the totals: +$"
          f"{price('waf_request') * 1e6:.2f} per million requests + ${price('waf_acl') + price('waf_rule'):.2f}"
          f" a month (${waf:,.2f} a month at 100 looks/s)")
    print(
        "assumptions: billed Lambda duration = measured CPU rounded up to 1 ms (the '+10 ms wait'"
        " row adds DynamoDB waits);\n  100/s and 1,000/s both fill the stream's batches to"
        f" BatchSize {DEPLOYED_BATCH} (measured on the trace's batches of"
        f" {full['records_per_batch']:.0f});\n  close units per look at the trace's density"
        " (150 posts): more looks per post-Day cost less per look, so high paces are conservative;"
        f"\n  aggregates priced as {AGGREGATE_MONTHS_KEPT} months accumulated at the measured bytes"
        " per look; a month is 30 days"
    )
    print("not priced: DynamoDB Streams reads (free for Lambda triggers), SQS on-failure"
          " queues (empty when healthy), PITR/backups (not enabled by the stack)")
    dash_rest = sum(price_dashboard_view(m, "full", "rest").values())
    dash_http = sum(price_dashboard_view(m, "full", "http").values())
    d = full["dashboard"]
    print(f"\na dashboard view (one PostStats request: {d['rru']:.1f} RRU, "
          f"{d['cpu_s'] * 1e3:.2f} ms CPU): ${dash_rest * 1e6:.2f} per million on the REST API "
          f"(${dash_http * 1e6:.2f} on an HTTP API)")
    at100 = rows["100 looks/s"]
    rest100, http100, url100 = at100["rest"], at100["http"], at100["url"]

    def verdict(summary_: dict[str, Any]) -> str:
        return "met" if summary_["per_million"] <= GOAL_PER_MILLION else "NOT met"

    print("\nbreakdown at 100 views/s, REST API, $ per million web views: " + ", ".join(
        f"{k} {v / (100 * SECONDS_PER_MONTH) * 1e6:.3f}"
        for k, v in sorted(rest100["items"].items(), key=lambda kv: -kv[1])))
    print("breakdown at 100 views/s, function URL, $ per million web views: " + ", ".join(
        f"{k} {v / (100 * SECONDS_PER_MONTH) * 1e6:.3f}"
        for k, v in sorted(url100["items"].items(), key=lambda kv: -kv[1])))
    print(f"biggest item at 100 views/s: {rest100['biggest']} "
          f"({rest100['items'][rest100['biggest']] / rest100['total']:.0%} of the bill)")
    print(f"${url100['per_million']:.2f} per million web views all-in at 100 views/s with the "
          f"function URL door (goal <= ${GOAL_PER_MILLION:.2f}: {verdict(url100)}); "
          f"${http100['per_million']:.2f} with the HTTP API door ({verdict(http100)}); "
          f"${rest100['per_million']:.2f} on the REST API ({verdict(rest100)})")
    return {
        "bench": "price",
        "prices_as_of": PRICES_AS_OF,
        "goal_per_million": GOAL_PER_MILLION,
        "per_million_web_views_at_100_rest": round(rest100["per_million"], 3),
        "per_million_web_views_at_100_http": round(http100["per_million"], 3),
        "per_million_web_views_at_100_url": round(url100["per_million"], 3),
        "goal_met_rest": rest100["per_million"] <= GOAL_PER_MILLION,
        "goal_met_http": http100["per_million"] <= GOAL_PER_MILLION,
        "goal_met_url": url100["per_million"] <= GOAL_PER_MILLION,
        "biggest_at_100": rest100["biggest"],
        "dashboard_view_usd_per_million_rest": round(dash_rest * 1e6, 3),
        "paces": {
            n: {
                "looks_per_s": round(r["rate"], 4),
                "usd_per_month_rest": round(r["rest"]["total"], 2),
                "usd_per_month_http": round(r["http"]["total"], 2),
                "usd_per_million_rest": round(r["rest"]["per_million"], 3),
                "usd_per_million_http": round(r["http"]["per_million"], 3),
                "usd_per_million_url": round(r["url"]["per_million"], 3),
                "usd_per_million_player_reports": round(r["players"]["total"], 3),
                "items_rest": {k: round(v, 2) for k, v in r["rest"]["items"].items()},
                "biggest": r["rest"]["biggest"],
            }
            for n, r in rows.items()
        },
        "measured": {
            "front_cpu_us": round(f["cpu_s"] * 1e6, 1),
            "front_log_bytes": round(f["log_bytes"], 1),
            "player_cpu_us": round(pl["cpu_s"] * 1e6, 1),
            "player_log_bytes": round(pl["log_bytes"], 1),
            "wru_per_stored_look_full": round(sum(full["wru"].values()), 3),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--looks", type=int, default=50_000, help="looks in the replay trace (bench_rollup's)")
    parser.add_argument("--quick", action="store_true", help="a small run (a smoke test)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.quick:
        m = measure(looks=3_000, front_requests=500, reports=500, low_looks=300)
    else:
        m = measure(looks=args.looks, front_requests=4_000, reports=3_000, low_looks=900)
    figures = report(m)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(f"(measured in {figures['seconds']} s)")
    print("BENCH " + json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
