"""The ack adapters as ``wiring`` picks them: MQTT to a real local broker, IoT Core's data
plane against moto in server mode, and the null one."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from vtsops.mqtt_broker import BrokerProcess

from chalicelib.config import Settings, get_settings
from chalicelib.players.acks import (
    Ack,
    IotDataAckPublisher,
    MqttAckPublisher,
    NullAckPublisher,
    ack_topic,
    send_ack,
)
from chalicelib.wiring import memory_services
from tests.conftest import free_port

pytestmark = pytest.mark.integration
KEY = "6f1c2f4e-9a57-4c8e-b1d2-3f6a8e0c7d15"
ACK = Ack(post_id=7, timestamp="2026-11-24T10:00:00Z", success=False, counted=False,
          error_code="rate_limited", error="at most one report per 5 s per player", retry_after=4)


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    process = BrokerProcess(free_port())
    process.start()
    yield process
    process.stop()


def test_the_mqtt_transport_reaches_the_player(
    broker: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VTS_ACK_TRANSPORT", "mqtt")
    monkeypatch.setenv("VTS_MQTT_PORT", str(broker.port))
    services = memory_services(get_settings())
    publisher = services.acks
    assert isinstance(publisher, MqttAckPublisher)
    received: queue.Queue[dict[str, object]] = queue.Queue()
    player = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"p3a-{KEY}")
    player.on_message = lambda _c, _u, m: received.put(json.loads(m.payload))
    player.connect("127.0.0.1", broker.port)
    player.loop_start()
    try:
        player.subscribe(ack_topic(KEY), qos=1)
        assert send_ack(publisher, KEY, ACK) is True
        ack = received.get(timeout=10)
    finally:
        player.loop_stop()
        player.disconnect()
        publisher.close()
    assert ack == {"post_id": 7, "timestamp": "2026-11-24T10:00:00Z", "success": False,
                   "counted": False, "error_code": "rate_limited",
                   "error": "at most one report per 5 s per player", "retry_after": 4}


def test_the_iot_transport_publishes_through_iot_data(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "VTS_ACK_TRANSPORT": "iot",
                        "VTS_IOT_DATA_ENDPOINT": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    publisher = memory_services(get_settings()).acks
    assert isinstance(publisher, IotDataAckPublisher)
    assert send_ack(publisher, KEY, ACK) is True


def test_an_unreachable_broker_is_a_lost_ack_not_an_error() -> None:
    publisher = MqttAckPublisher("127.0.0.1", free_port())
    assert send_ack(publisher, KEY, ACK) is False


def test_acks_are_off_by_default() -> None:
    assert isinstance(memory_services(Settings()).acks, NullAckPublisher)
