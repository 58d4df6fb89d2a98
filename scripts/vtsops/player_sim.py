"""Simulated players: N frames publishing firmware-shaped view reports over MQTT (awscrt).

Each player connects as the p3a firmware does (client id ``p3a-{player_key}``, clean
session, QoS 1) to a plaintext broker (``awscrt.mqtt.Connection``, no TLS: the local stack)
or to AWS IoT Core with its own certificate (``mtls_from_path``). Payloads are built field
for field as ``makapix_mqtt_publish_view`` builds them (see docs/players.md). A share of
players has an unset clock, a share of reports is sent twice (a QoS 1 redelivery as the
server sees it), and a share asks for an ack, which is tallied.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

UNSET_CLOCK = "1970-01-01T00:00:00Z"
# (channel, intent, context kind): what a p3a's channel types report.
CHANNELS: tuple[tuple[str, str, str | None], ...] = (
    ("all", "channel", None),
    ("promoted", "channel", None),
    ("named", "channel", None),
    ("by_user", "channel", "sqid"),
    ("reactions", "channel", "sqid"),
    ("hashtag", "channel", "hashtag"),
    ("institution", "channel", None),
    ("pinned", "channel", None),
    ("artwork", "artwork", None),
)
SQIDS = ("k3Jx9", "uQ8w2", "Zt7pL", "m2Vx0")
HASHTAGS = ("pixelart", "gameboy", "isometric")


def firmware_view(
    *,
    post_id: int,
    timestamp: str,
    intent: str,
    play_order: int,
    channel: str,
    player_key: str,
    channel_user_sqid: str | None = None,
    channel_hashtag: str | None = None,
    request_ack: bool = False,
) -> bytes:
    """One report, unformatted, with the firmware's fields, order and nulls."""
    payload = {
        "post_id": post_id,
        "timestamp": timestamp,
        "timezone": "",
        "intent": intent,
        "play_order": play_order,
        "channel": channel,
        "player_key": player_key,
        "channel_user_sqid": channel_user_sqid,
        "channel_hashtag": channel_hashtag,
        "request_ack": request_ack,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimulatedPlayer:
    player_key: str
    clock_set: bool = True
    certificate: Path | None = None
    private_key: Path | None = None


@dataclass
class Simulation:
    players: list[SimulatedPlayer]
    posts: list[int]
    messages: int = 200
    rate: float = 20.0  # reports per second, all players together
    artwork_share: float = 0.3
    retransmit_share: float = 0.05
    ack_share: float = 0.0
    ack_wait_s: float = 3.0
    seed: int = 7
    host: str = "127.0.0.1"
    port: int = 1883
    endpoint: str | None = None  # set: AWS IoT Core over mutual TLS on port 8883
    ca_file: Path | None = None


@dataclass
class SimulationReport:
    sent: int = 0
    reports: int = 0
    retransmissions: int = 0
    unset_clock: int = 0
    views: int = 0
    impressions: int = 0
    ack_requests: int = 0
    acks: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "reports": self.reports, "retransmissions": self.retransmissions,
            "unset_clock": self.unset_clock, "views": self.views, "impressions": self.impressions,
            "ack_requests": self.ack_requests, "acks": dict(self.acks),
            "elapsed_s": round(self.elapsed_s, 2),
        }


class _Connections:
    """One MQTT connection per player, as a fleet of frames would have."""

    def __init__(self, sim: Simulation, on_ack: Callable[[dict[str, Any]], None]) -> None:
        from awscrt import io

        self._sim = sim
        self._on_ack = on_ack
        self._group = io.EventLoopGroup(1)
        self._bootstrap = io.ClientBootstrap(self._group, io.DefaultHostResolver(self._group))
        self.by_key: dict[str, Any] = {}

    def open(self) -> None:
        from awscrt import mqtt

        for player in self._sim.players:
            connection = self._connection(player)
            connection.connect().result(15)
            if self._sim.ack_share > 0:
                future, _ = connection.subscribe(
                    f"makapix/player/{player.player_key}/view/ack", mqtt.QoS.AT_LEAST_ONCE,
                    callback=lambda topic, payload, **_kw: self._on_ack(json.loads(payload)),
                )
                future.result(15)
            self.by_key[player.player_key] = connection

    def _connection(self, player: SimulatedPlayer) -> Any:
        client_id = f"p3a-{player.player_key}"
        if self._sim.endpoint:
            from awsiot import mqtt_connection_builder

            if player.certificate is None or player.private_key is None:
                raise ValueError(f"player {player.player_key} has no certificate for TLS")
            return mqtt_connection_builder.mtls_from_path(
                endpoint=self._sim.endpoint, port=8883,
                cert_filepath=str(player.certificate), pri_key_filepath=str(player.private_key),
                ca_filepath=str(self._sim.ca_file) if self._sim.ca_file else None,
                client_bootstrap=self._bootstrap, client_id=client_id,
                clean_session=True, keep_alive_secs=60,
            )
        from awscrt import mqtt

        client = mqtt.Client(self._bootstrap, None)  # plaintext: the local broker
        return mqtt.Connection(
            client=client, host_name=self._sim.host, port=self._sim.port, client_id=client_id,
            clean_session=True, keep_alive_secs=60,
        )

    def close(self) -> None:
        for connection in self.by_key.values():
            with contextlib.suppress(Exception):  # closing: nothing left to do about it
                connection.disconnect().result(10)
        self.by_key.clear()


def simulate(sim: Simulation, progress: Callable[[int], None] | None = None) -> SimulationReport:
    """Publish ``sim.messages`` reports at ``sim.rate`` per second across the players."""
    from awscrt import mqtt

    if not sim.players or not sim.posts:
        raise ValueError("a simulation needs at least one player and one post")
    rng = random.Random(sim.seed)
    report = SimulationReport()
    lock = threading.Lock()

    def on_ack(ack: dict[str, Any]) -> None:
        with lock:
            report.acks["ok" if ack.get("success") else str(ack.get("error_code"))] += 1

    connections = _Connections(sim, on_ack)
    connections.open()
    pending: list[Any] = []
    started = time.monotonic()
    interval = 1.0 / sim.rate if sim.rate > 0 else 0.0
    try:
        for n in range(sim.messages):
            due = started + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            player = sim.players[n % len(sim.players)]
            payload, kind, wants_ack = _report(sim, player, rng)
            connection = connections.by_key[player.player_key]
            topic = f"makapix/player/{player.player_key}/view"
            future, _ = connection.publish(topic, payload, mqtt.QoS.AT_LEAST_ONCE)
            pending.append(future)
            report.reports += 1
            report.sent += 1
            report.views += kind == "view"
            report.impressions += kind == "impression"
            report.unset_clock += not player.clock_set
            report.ack_requests += wants_ack
            if rng.random() < sim.retransmit_share:
                # What the server sees of a QoS 1 redelivery: the very same message again.
                future, _ = connection.publish(topic, payload, mqtt.QoS.AT_LEAST_ONCE)
                pending.append(future)
                report.sent += 1
                report.retransmissions += 1
                report.ack_requests += wants_ack
            if progress is not None:
                progress(n + 1)
        for future in pending:
            future.result(30)  # every PUBACK is in: the broker has them all
        if report.ack_requests:
            deadline = time.monotonic() + sim.ack_wait_s
            while time.monotonic() < deadline and sum(report.acks.values()) < report.ack_requests:
                time.sleep(0.05)
    finally:
        report.elapsed_s = time.monotonic() - started
        connections.close()
    return report


def _report(sim: Simulation, player: SimulatedPlayer, rng: random.Random) -> tuple[bytes, str, bool]:
    artwork = rng.random() < sim.artwork_share
    channel, intent, context = ("artwork", "artwork", None) if artwork else rng.choice(CHANNELS[:-1])
    wants_ack = rng.random() < sim.ack_share
    payload = firmware_view(
        post_id=rng.choice(sim.posts),
        timestamp=iso_now() if player.clock_set else UNSET_CLOCK,
        intent=intent,
        play_order=rng.choice((1, 2)),  # the firmware derives 1 (created) or 2 (random)
        channel=channel,
        player_key=player.player_key,
        channel_user_sqid=rng.choice(SQIDS) if context == "sqid" else None,
        channel_hashtag=rng.choice(HASHTAGS) if context == "hashtag" else None,
        request_ack=wants_ack,
    )
    return payload, "view" if intent == "artwork" else "impression", wants_ack
