"""The local IoT stand-in's view of who published: an amqtt broker plugin.

IoT Core's rule engine knows each message's publisher (``clientid()``); an MQTT subscriber
never does. So the local broker runs this plugin: every message it accepts on a topic under
one of ``iot_rules/``'s filters is also handed, as an *envelope* carrying the publisher's
client id, to the internal topic ``$VTS/rules/{rule}``, which the local rule bridge
(``trigger_mqtt.PlayerViewBridge``) consumes. Clients cannot forge envelopes: amqtt refuses
a PUBLISH to any ``$`` topic.

Like IoT Core, the rule engine does not depend on a consumer being connected at that
moment: envelopes that find no consumer are held (up to ``HOLD_MAX``) and handed over when
one subscribes, so a message a bridge delivers just after the broker restarts is not lost.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from typing import Any

from amqtt.plugins.base import BasePlugin

ENVELOPE_PREFIX = "$VTS/rules/"
HOLD_MAX = 100_000


def envelope_topic(rule_name: str) -> str:
    return f"{ENVELOPE_PREFIX}{rule_name}"


def pack(topic: str, client_id: str | None, payload: bytes) -> bytes:
    return json.dumps(
        {"topic": topic, "client_id": client_id, "payload": base64.b64encode(payload).decode()},
        separators=(",", ":"),
    ).encode()


def unpack(data: bytes) -> tuple[str, str | None, bytes]:
    """(topic, publisher's client id, payload) of an envelope; ValueError if it is not one."""
    try:
        document = json.loads(data)
        topic, client_id = document["topic"], document["client_id"]
        payload = base64.b64decode(document["payload"], validate=True)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"not a rule envelope: {error}") from None
    if not isinstance(topic, str) or not (client_id is None or isinstance(client_id, str)):
        raise ValueError("not a rule envelope: bad topic or client id")
    return topic, client_id, payload


class RuleTap(BasePlugin[Any]):
    """Copies each message under a rule's filter to that rule's envelope topic."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        from iot_rules import load_rule, rule_names

        self._rules = [load_rule(name) for name in rule_names()]
        self._consumers: dict[str, set[str]] = {r.name: set() for r in self._rules}
        self._held: dict[str, deque[bytes]] = {r.name: deque(maxlen=HOLD_MAX) for r in self._rules}

    async def on_broker_message_broadcast(self, *, client_id: str, message: Any) -> None:
        topic = message.topic
        for rule in self._rules:
            if not rule.matches(topic):
                continue
            envelope = pack(topic, client_id, bytes(message.data or b""))
            if self._consumers[rule.name]:
                await self.context.broadcast_message(envelope_topic(rule.name), envelope, 1)
            else:
                self._held[rule.name].append(envelope)

    async def on_broker_client_subscribed(self, *, client_id: str, topic: str, qos: int) -> None:
        for rule in self._rules:
            if topic != envelope_topic(rule.name):
                continue
            self._consumers[rule.name].add(client_id)
            held = self._held[rule.name]
            while held:
                await self.context.broadcast_message(topic, held.popleft(), 1)

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Any) -> None:
        for consumers in self._consumers.values():
            consumers.discard(client_id)
