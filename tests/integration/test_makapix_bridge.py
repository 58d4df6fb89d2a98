"""Real frames' path, end to end (DESIGN §7, docs/makapix.md): frame-shaped clients with
their own certificates -> Debian's mosquitto configured as Makapix's broker (mutual TLS,
``use_identity_as_username``, the per-``%u`` ACL) -> the bridge block of the runbook -> the
local IoT stand-in (amqtt, its rule tap and the bridge playing the rule) -> the real
``player_views`` service -> DynamoDB in moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from vtsops.mqtt_broker import BrokerProcess
from vtsops.trigger_mqtt import PlayerViewBridge

from chalicelib.config import Settings
from chalicelib.days import day_of
from chalicelib.enrich.visitor import user_visitor
from chalicelib.wiring import Services, dynamodb_services
from tests.conftest import free_port
from tests.makapix_broker import MakapixBroker, PeriodicPublisher, frame_client
from tests.players_support import firmware_payload, view_topic

pytestmark = pytest.mark.integration
OWNERS = ("owner-1", "owner-2", "owner-3")
ARTIST = "artist-9"
BRIDGE = "vts-bridge-makapix"
KEYS = (
    "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15",
    "0b8f6a2c-3d4e-4f50-8a61-7b2c9d0e1f23",
    "5d1e7c3a-8b2f-4a6e-9c0d-1e2f3a4b5c6d",
)


def firmware_bytes(name: str = "p3a_channel_reactions", **changes: Any) -> bytes:
    """A report as the firmware sends it: cJSON_PrintUnformatted, the firmware's key order."""
    return json.dumps(firmware_payload(name, **changes), separators=(",", ":")).encode()


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Path:
    services: Services
    remote: BrokerProcess
    bridge: PlayerViewBridge
    makapix: MakapixBroker


@pytest.fixture
def path(aws_env: Settings) -> Iterator[Path]:
    services = dynamodb_services(replace(aws_env, post_cache_s=0))
    for post_id in range(1, 61):
        services.posts.register(post_id, ARTIST)
    for key, owner in zip(KEYS, OWNERS, strict=True):
        services.players.register(key, owner)
    remote = BrokerProcess(free_port())
    remote.start()
    bridge = PlayerViewBridge(services, "127.0.0.1", remote.port, workers=2)
    bridge.start()
    # The runbook's block; a quick reconnect so the test does not wait out the backoff.
    makapix = MakapixBroker(remote_port=remote.port, restart_timeout="1 3")
    try:
        makapix.start()
        makapix.wait_bridge_connected()
        yield Path(services, remote, bridge, makapix)
    finally:
        makapix.stop()
        makapix.cleanup()
        bridge.stop()
        remote.stop()


def stored(services: Services, post_id: int) -> list[Any]:
    return list(services.events.day_events(post_id, day_of(datetime.now(UTC))))


def test_firmware_reports_through_makapix_broker_count(path: Path) -> None:
    now = datetime.now(UTC)
    frames = [frame_client(path.makapix, key) for key in KEYS]
    try:
        for n, frame in enumerate(frames):
            frame.publish(view_topic(frame.key), firmware_bytes(
                "p3a_artwork_ack", post_id=1 + n, player_key=frame.key, timestamp=iso(now),
            ))
        frames[0].publish(view_topic(KEYS[0]), firmware_bytes(
            "p3a_channel_reactions", post_id=10, player_key=KEYS[0], timestamp=iso(now + timedelta(seconds=6)),
        ))
        assert path.bridge.wait_for(4)
    finally:
        for frame in frames:
            frame.close()
    assert path.bridge.outcomes == {"counted": 3, "impression": 1}
    for n, key in enumerate(KEYS):
        [view] = stored(path.services, 1 + n)
        assert (view.intent, view.source, view.player_key, view.visitor) == (
            "view", "player", key, user_visitor(path.services.settings.visitor_key, OWNERS[n]))
    [impression] = stored(path.services, 10)
    assert (impression.channel, impression.channel_context) == ("reactions", "k3Jx9")
    # The operator's check: the last report came over the bridge.
    path.services.drops.flush()
    last = path.services.drop_store.last_report()
    assert last is not None and last["client_id"] == BRIDGE


def test_a_frame_cannot_report_for_another_frame(path: Path) -> None:
    now = datetime.now(UTC)
    frame = frame_client(path.makapix, KEYS[0])
    try:
        # Mosquitto acknowledges (MQTT 3.1.1 has no refusal) and drops it: the ACL.
        frame.publish(view_topic(KEYS[1]), firmware_bytes(
            post_id=20, player_key=KEYS[1], intent="artwork", timestamp=iso(now)))
        frame.publish(view_topic(KEYS[0]), firmware_bytes(
            post_id=21, player_key=KEYS[0], intent="artwork", timestamp=iso(now)))
        assert path.bridge.wait_for(1)
    finally:
        frame.close()
    assert path.bridge.received == 1
    assert path.bridge.outcomes == {"counted": 1}
    assert stored(path.services, 20) == [] and len(stored(path.services, 21)) == 1


def test_a_stranger_on_the_iot_side_counts_nothing_and_spends_no_rate(path: Path) -> None:
    now = datetime.now(UTC)
    stranger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="not-a-frame",
                           protocol=mqtt.MQTTv311)
    stranger.connect("127.0.0.1", path.remote.port)
    stranger.loop_start()
    frame = frame_client(path.makapix, KEYS[2])
    try:
        info = stranger.publish(view_topic(KEYS[2]), firmware_bytes(
            post_id=30, player_key=KEYS[2], intent="artwork", timestamp=iso(now)), qos=1)
        info.wait_for_publish(10)
        assert path.bridge.wait_for(1)
        frame.publish(view_topic(KEYS[2]), firmware_bytes(
            post_id=31, player_key=KEYS[2], intent="artwork", timestamp=iso(now)))
        assert path.bridge.wait_for(2)
    finally:
        frame.close()
        stranger.loop_stop()
        stranger.disconnect()
    assert path.bridge.outcomes == {"player_client_mismatch": 1, "counted": 1}
    assert stored(path.services, 30) == [] and len(stored(path.services, 31)) == 1


def test_nothing_is_lost_while_vts_is_away(path: Path) -> None:
    """The IoT stand-in stops for 30 s while frames keep reporting every 6 s (Impressions of
    changing posts, each frame's clock set); every report counts exactly once."""
    start = datetime.now(UTC).replace(microsecond=0)
    frames = [frame_client(path.makapix, key) for key in KEYS]

    def reports(key: str, frame_no: int) -> Any:
        return lambda n: firmware_bytes(
            post_id=1 + (frame_no * 20 + n) % 60, player_key=key,
            timestamp=iso(start + timedelta(seconds=6 * n)),
        )

    publishers = [
        PeriodicPublisher(frame, reports(frame.key, i), interval=6).start()
        for i, frame in enumerate(frames)
    ]
    try:
        assert path.bridge.wait_for(len(frames), timeout_s=30)  # each frame's first report
        path.remote.stop()
        outage_until = datetime.now(UTC) + timedelta(seconds=30)
        while datetime.now(UTC) < outage_until:
            path.bridge.wait_for(10**9, timeout_s=1)
        path.remote.start()
        sent = {p.frame.key: p.stop() for p in publishers}
        total = sum(len(bodies) for bodies in sent.values())
        assert path.bridge.wait_for(total, timeout_s=60), (path.bridge.outcomes, total)
    finally:
        for frame in frames:
            frame.close()
    outcomes = dict(path.bridge.outcomes)
    retransmissions = outcomes.pop("player_retransmission", 0)
    assert outcomes == {"impression": total}, (outcomes, retransmissions)
    assert all(len(bodies) >= 5 for bodies in sent.values())  # reports made during the outage
    day = day_of(datetime.now(UTC))
    stored_reports = sorted(
        (e.player_key, e.device_at) for post in range(1, 61)
        for e in path.services.events.day_events(post, day)
    )
    expected = sorted(
        (key, start + timedelta(seconds=6 * n)) for key, bodies in sent.items()
        for n in range(len(bodies))
    )
    assert stored_reports == expected
