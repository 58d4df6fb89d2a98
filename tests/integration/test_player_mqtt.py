"""Players end to end over a real MQTT broker (the local stack's amqtt process), the bridge
that plays the IoT rule, and DynamoDB in moto; drops read back through ``GET /v1/health``."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from vtsops.mqtt_broker import BrokerProcess
from vtsops.trigger_mqtt import PlayerViewBridge

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.days import day_of
from chalicelib.enrich.visitor import user_visitor
from chalicelib.players.pipeline import DROP_REASONS
from chalicelib.wiring import Services, dynamodb_services
from tests.conftest import auth, free_port
from tests.players_support import firmware_payload, view_topic

pytestmark = pytest.mark.integration
ARTIST = "artist-1"
OWNER = "owner-7"
ACK_FIELDS = ["post_id", "timestamp", "success", "counted", "error_code", "error", "retry_after"]


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    process = BrokerProcess(free_port())
    process.start()
    yield process
    process.stop()


@pytest.fixture
def services(aws_env: Settings) -> Services:
    # The clock stands still (no rate slot ever frees by itself) on today's date, so the
    # drops land on the Day that /v1/health reads.
    settings = replace(aws_env, post_cache_s=0)
    services = dynamodb_services(settings, clock=FixedClock(datetime.now(UTC)))
    for post_id in (1, 2, 3):
        services.posts.register(post_id, ARTIST)
    return services


@pytest.fixture
def bridge(services: Services, broker: BrokerProcess) -> Iterator[PlayerViewBridge]:
    bridge = PlayerViewBridge(services, "127.0.0.1", broker.port, workers=1)
    bridge.start()
    yield bridge
    bridge.stop()


class Player:
    """A third-party MQTT client speaking as a frame (client id as the p3a firmware sets it)."""

    def __init__(self, port: int, player_key: str) -> None:
        self.key = player_key
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"p3a-{player_key}")
        self.client.on_message = lambda _c, _u, m: self.acks.put(json.loads(m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        info = self.client.subscribe(f"makapix/player/{player_key}/view/ack", qos=1)
        assert info[0] == 0

    def publish(self, payload: dict[str, Any] | bytes, topic_key: str | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":"))
        info = self.client.publish(view_topic(topic_key or self.key), body, qos=1)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def new_player(services: Services, owner: str | None = OWNER, **registration: Any) -> str:
    key = str(uuid.uuid4())
    if owner is not None:
        services.players.register(key, owner, **registration)
    return key


def test_a_third_party_client_is_stored_and_acked(
    services: Services, bridge: PlayerViewBridge, broker: BrokerProcess
) -> None:
    key = new_player(services, country="BR", timezone="America/Sao_Paulo")
    player = Player(broker.port, key)
    try:
        player.publish(firmware_payload("p3a_artwork_ack", post_id=1, player_key=key))
        ack = player.acks.get(timeout=15)
    finally:
        player.close()
    assert list(ack) == ACK_FIELDS
    assert ack == {"post_id": 1, "timestamp": "2026-11-24T10:02:35Z", "success": True,
                   "counted": True, "error_code": None, "error": None, "retry_after": None}
    [event] = services.events.day_events(1, day_of(services.clock.now()))
    assert (event.intent, event.source, event.device, event.country) == ("view", "player", "player", "BR")
    assert event.player_key == key
    assert event.visitor == user_visitor(services.settings.visitor_key, OWNER)


def test_every_firmware_payload_through_the_broker(
    services: Services, bridge: PlayerViewBridge, broker: BrokerProcess
) -> None:
    names = ["p3a_channel_reactions", "p3a_channel_all", "p3a_unset_clock", "p3a_unknown_channel"]
    players = []
    for n, name in enumerate(names):
        key = new_player(services)
        player = Player(broker.port, key)
        players.append(player)
        player.publish(firmware_payload(name, post_id=1 + n % 3, player_key=key))
    try:
        assert bridge.wait_for(len(names))
    finally:
        for player in players:
            player.close()
    assert bridge.outcomes == {"impression": 3, "counted": 1}  # only p3a_unset_clock is "artwork"


def test_every_drop_reason_is_counted_once_and_reported_by_health(
    services: Services, bridge: PlayerViewBridge, broker: BrokerProcess, api: Any
) -> None:
    author = new_player(services, owner=ARTIST)
    a, b, c = new_player(services), new_player(services), new_player(services, owner=None)
    d, e, f = new_player(services), new_player(services), new_player(services)
    g = new_player(services)
    services.posts.register(3, ARTIST, visible=False)  # hidden on Makapix: stops counting
    view = firmware_payload(intent="artwork", post_id=1)
    players = {k: Player(broker.port, k) for k in (author, a, b, c, d, e, f, g)}
    try:
        players[a].publish({**view, "player_key": a, "intent": "peek"})        # invalid
        players[b].publish({**view, "player_key": a})                          # key mismatch
        players[b].publish({**view, "player_key": d}, topic_key=d)             # client mismatch
        players[b].publish({**view, "player_key": b, "client_id": "vts-bridge-makapix"})  # WHERE
        players[c].publish({**view, "player_key": c})                          # unregistered
        players[d].publish({**view, "player_key": d})                          # counted
        players[d].publish({**view, "player_key": d})                          # retransmission
        players[d].publish({**view, "player_key": d, "post_id": 2})            # rate limited
        players[e].publish({**view, "player_key": e, "post_id": 404})          # unknown post
        players[author].publish({**view, "player_key": author})                # author view
        players[f].publish({**view, "player_key": f})                          # duplicate (same owner)
        players[g].publish({**view, "player_key": g, "post_id": 3})            # post not counting
        players[a].publish(b"\x00 not json")                                   # the rule's error action
        assert bridge.wait_for(13)
    finally:
        for player in players.values():
            player.close()
    assert bridge.outcomes == {"counted": 1, **dict.fromkeys(DROP_REASONS, 1)}
    assert (bridge.rule_errors, bridge.filtered, bridge.failures) == (1, 1, 0)
    health = api.http.get("/v1/health", headers=auth(services.settings, "ops", "service")).json_body
    drops = health["drops"]["since_yesterday"]
    assert {reason: drops.get(reason) for reason in DROP_REASONS} == dict.fromkeys(DROP_REASONS, 1)


def test_the_lambda_handler_is_a_thin_adapter(api: Any, aws_env: Settings) -> None:
    from tests.conftest import load_event

    services = dynamodb_services(aws_env)
    event = load_event("iot_player_view")
    services.posts.register(event["post_id"], ARTIST)
    services.players.register(event["topic_player_key"], OWNER)
    answer = api.lambda_.invoke("player_views", event).payload
    assert answer == {"outcome": "impression", "counted": False, "acked": False}
    again = api.lambda_.invoke("player_views", event).payload  # Lambda redelivers the same event
    assert again["outcome"] == "impression"
    stored = list(services.events.day_events(event["post_id"], day_of(datetime.now(UTC))))
    assert len(stored) == 1
