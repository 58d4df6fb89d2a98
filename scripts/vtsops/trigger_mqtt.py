"""IoT Core's stand-ins in the local stack: the MQTT broker, and the bridge that plays the
topic rule ``iot_rules/player_views.json``.

The broker's rule tap (rule_tap.py) hands the bridge every message under the rule's topic
filter with its publisher's client id, as IoT Core's rule engine knows it; the bridge
builds each event exactly as the rule's SQL would (``iot_rules.TopicRule.apply``, with
``clientid()`` the publisher's id) and hands it to the same service the ``player_views``
Lambda calls. Acks go back to the broker on the bridge's own connection. A payload the
rule could not turn into an event is what IoT Core sends to the rule's error action: the
bridge logs and counts it as a rule error; one the rule's WHERE skips is counted as
filtered. A handler that raises is retried twice, as Lambda retries an asynchronous
invocation. If the broker restarts, the bridge reconnects within about two seconds and the
tap holds what arrived meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from iot_rules import TopicRule, player_views_rule
from vtsops.mqtt_broker import BrokerProcess
from vtsops.rule_tap import envelope_topic, unpack
from vtsops.stack import ROOT

logger = logging.getLogger("vts.bridge")

Handler = Callable[[dict[str, Any]], dict[str, Any]]
_STOP = object()


class PlayerViewBridge:
    """Subscribes like the rule, invokes like the rule's Lambda action."""

    name = "iot-bridge"

    def __init__(
        self,
        services: Any,
        host: str,
        port: int,
        *,
        rule: TopicRule | None = None,
        workers: int = 4,
        retries: int = 2,
        retry_delay_s: float = 0.5,
    ) -> None:
        self._services = services
        self.host = host
        self.port = port
        self.rule = rule or player_views_rule()
        self._workers = max(1, workers)
        self._retries = retries
        self._retry_delay_s = retry_delay_s
        self._client: Any = None
        self._handle: Handler | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._subscribed = threading.Event()
        self._done = threading.Condition()
        self._last_received_ms = 0
        self.received = 0
        self.rule_errors = 0
        self.filtered = 0
        self.failures = 0
        self.outcomes: Counter[str] = Counter()

    # ---- component -------------------------------------------------------------------------

    def start(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from chalicelib.players.acks import MqttAckPublisher

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"vts-iot-bridge-{uuid.uuid4().hex[:8]}")
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *_args: self._subscribed.set()
        client.on_message = self._on_message
        self._client = client
        # The rule's Lambda sees the same services; only the ack transport is the bridge's.
        self._services.acks = MqttAckPublisher(client=client)
        self._services.__dict__.pop("player_views", None)  # rebuilt over those acks
        self._handle = self._services.player_views.record
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"iot-bridge-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        client.connect(self.host, self.port, keepalive=30)
        client.loop_start()
        if not self._subscribed.wait(10):
            self.stop()
            raise TimeoutError(f"the bridge could not subscribe to {self.topic}")

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        client, self._client = self._client, None
        if client is not None:
            client.loop_stop()
            client.disconnect()

    # ---- waiting (tests, benchmark) ----------------------------------------------------------

    @property
    def handled(self) -> int:
        """Messages fully dealt with: handled by the service, failed for good, rule errors,
        or skipped by the rule's WHERE."""
        return sum(self.outcomes.values()) + self.failures + self.rule_errors + self.filtered

    @property
    def topic(self) -> str:
        """Where the broker's rule tap hands this rule's messages."""
        return envelope_topic(self.rule.name)

    def wait_for(self, count: int, timeout_s: float = 20.0) -> bool:
        """Block until ``count`` events were handled (or failed for good) or time runs out."""
        deadline = time.monotonic() + timeout_s
        with self._done:
            while self.handled < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    # ---- MQTT side ---------------------------------------------------------------------------

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            logger.error("the bridge could not connect to the broker: %s", reason)
            return
        client.subscribe(self.topic, qos=1)

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._done:
            # What the rule's timestamp() gives, kept strictly increasing: IoT Core never
            # delivers a message and its QoS 1 redelivery within the same millisecond.
            received_at_ms = max(int(time.time() * 1000), self._last_received_ms + 1)
            self._last_received_ms = received_at_ms
            self.received += 1
            try:
                topic, client_id, payload = unpack(bytes(message.payload))
            except ValueError as error:
                self.rule_errors += 1
                logger.warning("the rule tap sent something else: %s", error)
                self._done.notify_all()
                return
            verdict, event = self.rule.apply(topic, payload, client_id, received_at_ms)
            if verdict == "filtered":
                self.filtered += 1
                logger.info("rule WHERE skipped a report on %s from %s", topic, client_id)
                self._done.notify_all()
                return
            if event is None:
                # IoT Core would fail the Lambda action and run the rule's error action.
                self.rule_errors += 1
                logger.warning("rule error: the payload on %s is not a JSON object", topic)
                self._done.notify_all()
                return
        self._queue.put(event)

    # ---- Lambda side -------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            outcome = self._invoke(event)
            if self._queue.empty():
                self._flush_drops()
            with self._done:
                if outcome is None:
                    self.failures += 1
                else:
                    self.outcomes[outcome] += 1
                self._done.notify_all()

    def _flush_drops(self) -> None:
        # Drop counts are buffered per process; a Lambda container may hold them until its
        # next drop, but locally /v1/health should show them as soon as the bridge is idle.
        try:
            self._services.drops.flush()
        except Exception as error:
            logger.warning("could not flush the drop counters: %s", error)

    def _invoke(self, event: dict[str, Any]) -> str | None:
        assert self._handle is not None
        for attempt in range(self._retries + 1):
            try:
                return str(self._handle(event)["outcome"])
            except Exception as error:  # the Lambda failed: retry it like Lambda would
                logger.warning("player_views failed (attempt %d): %s", attempt + 1, error)
                time.sleep(self._retry_delay_s)
        return None


def components(services: Any) -> list[Any]:
    """The broker and the bridge, for the local stack."""
    settings = services.settings
    broker = BrokerProcess(settings.mqtt_port, ROOT / ".vts" / "mqtt.log")
    bridge = PlayerViewBridge(services, settings.mqtt_host, settings.mqtt_port)
    return [broker, bridge]
