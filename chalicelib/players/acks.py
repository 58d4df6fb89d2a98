"""View acks: what a player that sets ``request_ack`` is told, and the ways to tell it.

The ``AckPublisher`` port publishes one ack to ``makapix/player/{player_key}/view/ack``
(QoS 1). Adapters: MQTT over paho (the local broker), AWS IoT's data plane (an injected
boto3 ``iot-data`` client; ``wiring`` builds it), a memory one for tests, and a null one.
Publishing an ack is best effort: a lost ack must never turn into a Lambda retry.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

logger = logging.getLogger("vts.players.acks")

ErrorCode = Literal["rate_limited", "not_found", "invalid", "unregistered", "internal_error"]


def ack_topic(player_key: str) -> str:
    """The ack topic of a player, built from the key exactly as its topic carried it."""
    return f"makapix/player/{player_key}/view/ack"


@dataclass(frozen=True)
class Ack:
    """The ack JSON of DESIGN §4 (field order as documented)."""

    post_id: int | None
    timestamp: str | None
    success: bool
    counted: bool
    error_code: ErrorCode | None = None
    error: str | None = None
    retry_after: int | None = None

    def payload(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


class AckPublisher(Protocol):
    def publish(self, topic: str, payload: bytes) -> None:
        """Publish one ack at QoS 1. May raise; callers treat acks as best effort."""
        ...


def send_ack(publisher: AckPublisher, player_key: str, ack: Ack) -> bool:
    """Publish ``ack`` to the player's ack topic; False (logged) if that failed."""
    try:
        publisher.publish(ack_topic(player_key), ack.payload())
    except Exception as error:  # an ack is best effort, never a retry
        logger.warning("could not publish a view ack to %s: %s", player_key, error)
        return False
    return True


class NullAckPublisher:
    """Acks switched off (``VTS_ACK_TRANSPORT=none``)."""

    def publish(self, topic: str, payload: bytes) -> None:
        return None


class MemoryAckPublisher:
    """Keeps what was published (unit tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.sent.append((topic, json.loads(payload)))


class IotDataAckPublisher:
    """AWS IoT Core's data plane ``Publish`` over an injected boto3 ``iot-data`` client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic=topic, qos=1, payload=payload)


class MqttAckPublisher:
    """Publishes over an MQTT connection (paho): the local broker stands in for IoT Core.

    Built either over a client someone else runs (the bridge's own connection) or from a
    host and port, connecting on first use.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, client: Any = None) -> None:
        self._host = host
        self._port = port
        self._client = client
        self._owned = client is None
        self._lock = threading.Lock()

    def _connected(self) -> Any:
        with self._lock:
            if self._client is None:
                import paho.mqtt.client as mqtt
                from paho.mqtt.enums import CallbackAPIVersion

                client = mqtt.Client(
                    CallbackAPIVersion.VERSION2, client_id=f"vts-acks-{uuid.uuid4().hex[:12]}"
                )
                client.connect(self._host, self._port, keepalive=30)
                client.loop_start()
                self._client = client
            return self._client

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._connected().publish(topic, payload, qos=1)
        if info.rc != 0:
            raise ConnectionError(f"MQTT publish to {topic} failed (rc={info.rc})")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._owned:
            client.loop_stop()
            client.disconnect()
