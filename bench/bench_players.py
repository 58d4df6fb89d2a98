#!/usr/bin/env python3
"""Player view reports: the handler's CPU per message on memory services (median µs, by
path), then messages per second end to end — MQTT publishers -> the local broker (amqtt
process) -> the bridge playing the IoT rule -> the player_views service -> DynamoDB in moto
(server mode, loopback). Everything on 127.0.0.1; moto's speed bounds the second figure
(NOTES: about 375 PutItem/s over loopback), it is not a DynamoDB figure.
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from vtsops.player_sim import firmware_view  # noqa: E402

from chalicelib.clock import FixedClock  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.wiring import Services, memory_services  # noqa: E402
from iot_rules import player_views_rule  # noqa: E402

RULE = player_views_rule()
HANDLER_MESSAGES = 20_000
E2E_PLAYERS = 50
E2E_PER_PLAYER = 40  # 2,000 messages
E2E_WORKERS = 4
POSTS = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report_payload(key: str, n: int, post_id: int | None = None) -> bytes:
    seconds = n % 60
    minutes = n // 60 % 60
    return firmware_view(
        post_id=post_id or 1 + n % POSTS,
        timestamp=f"2026-11-24T10:{minutes:02d}:{seconds:02d}Z",
        intent="artwork" if n % 10 < 3 else "channel",
        play_order=1 + n % 2,
        channel="artwork" if n % 10 < 3 else "reactions",
        player_key=key,
        channel_user_sqid=None if n % 10 < 3 else "k3Jx9",
    )


def event_for(key: str, payload: bytes, received_at: int) -> dict[str, Any]:
    event = RULE.build_event(f"makapix/player/{key}/view", payload, f"p3a-{key}", received_at)
    assert event is not None
    return event


def cpu_us(services: Services, events: list[dict[str, Any]]) -> tuple[list[float], dict[str, int]]:
    record = services.player_views.record
    clock = services.clock
    assert isinstance(clock, FixedClock)
    samples, outcomes = [], {}
    for event in events:
        clock.advance(0.001)
        started = time.thread_time_ns()
        outcome = record(event)["outcome"]
        samples.append((time.thread_time_ns() - started) / 1000)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return samples, outcomes


def handler_figures() -> dict[str, float]:
    services = memory_services(Settings(drop_flush_s=3600), clock=FixedClock(
        __import__("datetime").datetime(2026, 11, 24, 10, tzinfo=__import__("datetime").UTC)))
    keys = [str(uuid.uuid4()) for _ in range(HANDLER_MESSAGES)]
    for post_id in range(1, POSTS + 1):
        services.posts.register(post_id, f"artist-{post_id % 3}")
    for n, key in enumerate(keys):
        services.players.register(key, f"owner-{n}", "BR")
    # Accepted path: every report from its own player (no rate limit), 30 % Views.
    accepted = [event_for(k, report_payload(k, n), 1_795_514_400_000 + n) for n, k in enumerate(keys)]
    cpu_us(services, accepted[:1000])  # warm up caches and imports
    samples, outcomes = cpu_us(services, accepted[1000:])
    # Drop paths: the same player again (rate limited) and a malformed report.
    limited = [event_for(keys[5], report_payload(keys[5], 10_000 + n), 1_795_600_000_000 + n)
               for n in range(5000)]
    limited_samples, _ = cpu_us(services, limited)
    broken = [{**e, "intent": "peek"} for e in accepted[:5000]]
    invalid_samples, _ = cpu_us(services, broken)
    figures = {
        "handler_cpu_us_median": statistics.median(samples),
        "handler_cpu_us_p90": statistics.quantiles(samples, n=10)[-1],
        "rate_limited_cpu_us_median": statistics.median(limited_samples),
        "invalid_cpu_us_median": statistics.median(invalid_samples),
    }
    print(f"handler CPU per message, memory services, {len(samples)} accepted reports "
          f"({outcomes.get('counted', 0)} Views counted, {outcomes.get('impression', 0)} Impressions):")
    print(f"  accepted       median {figures['handler_cpu_us_median']:.1f} µs, "
          f"p90 {figures['handler_cpu_us_p90']:.1f} µs")
    print(f"  rate limited   median {figures['rate_limited_cpu_us_median']:.1f} µs")
    print(f"  invalid        median {figures['invalid_cpu_us_median']:.1f} µs")
    return figures


def end_to_end_figures() -> dict[str, float]:
    import subprocess
    import urllib.request

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from vtsops.mqtt_broker import BrokerProcess
    from vtsops.trigger_mqtt import PlayerViewBridge

    from chalicelib.storage.provision import ensure_tables
    from chalicelib.wiring import dynamodb_services

    aws_port, mqtt_port = free_port(), free_port()
    # moto in its own process (server mode), so it does not share the bridge's GIL.
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(aws_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{aws_port}/moto-api/data.json", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    broker = BrokerProcess(mqtt_port)
    broker.start()
    # Every report goes the whole way (no rate slot held): the write path is what is timed.
    settings = replace(
        Settings(), dynamodb_endpoint=f"http://127.0.0.1:{aws_port}", player_interval_s=0,
        drop_flush_s=10, visitor_key="bench-visitor-key",
    )
    services = dynamodb_services(settings)
    ensure_tables(services.client, settings.table_names())
    keys = [str(uuid.uuid4()) for _ in range(E2E_PLAYERS)]
    for post_id in range(1, POSTS + 1):
        services.posts.register(post_id, f"artist-{post_id % 3}")
    for n, key in enumerate(keys):
        services.players.register(key, f"owner-{n}", "BR")
    bridge = PlayerViewBridge(services, "127.0.0.1", mqtt_port, workers=E2E_WORKERS)
    bridge.start()
    publishers = []
    try:
        for key in keys:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"p3a-{key}")
            client.max_inflight_messages_set(50)
            client.connect("127.0.0.1", mqtt_port)
            client.loop_start()
            publishers.append((key, client))
        total = E2E_PLAYERS * E2E_PER_PLAYER
        started = time.perf_counter()
        infos = []
        for n in range(E2E_PER_PLAYER):
            for key, client in publishers:
                infos.append(client.publish(f"makapix/player/{key}/view", report_payload(key, n), qos=1))
        for info in infos:
            info.wait_for_publish(60)
        published = time.perf_counter() - started
        done = bridge.wait_for(total, timeout_s=600)
        elapsed = time.perf_counter() - started
        if not done:
            raise RuntimeError(f"only {bridge.handled} of {total} messages were handled")
    finally:
        for _key, client in publishers:
            client.loop_stop()
            client.disconnect()
        bridge.stop()
        broker.stop()
        moto.terminate()
        moto.wait(10)
    rate = total / elapsed
    print(f"end to end, {total} QoS 1 messages from {E2E_PLAYERS} players, bridge with "
          f"{E2E_WORKERS} workers, into moto (its own process):")
    print(f"  published (all PUBACKs) in {published:.2f} s; all handled in {elapsed:.2f} s "
          f"-> {rate:.0f} messages/s")
    print(f"  outcomes {dict(bridge.outcomes)}; failures {bridge.failures}")
    return {"e2e_messages": total, "e2e_msgs_per_s": rate, "e2e_seconds": elapsed,
            "e2e_failures": bridge.failures}


def main() -> int:
    figures = handler_figures()
    figures.update(end_to_end_figures())
    rounded = {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}
    print("BENCH " + json.dumps({"bench": "players", **rounded}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
