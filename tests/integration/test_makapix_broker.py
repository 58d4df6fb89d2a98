"""The Makapix harness itself, at the MQTT level (no VTS handler): Debian's real mosquitto
configured as Makapix Club's broker, bridging the view topic into the local IoT stand-in
(amqtt), and frame-shaped clients (tests/makapix_broker.py).

``VTS_MAKAPIX_OUTAGE_S`` sets how long the remote stays down in the outage test (30 s)."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from vtsops.iot_provision import bridge_block
from vtsops.mqtt_broker import BrokerProcess

from tests.conftest import free_port
from tests.makapix_broker import (
    BRIDGE_BLOCK,
    BRIDGE_NAME,
    MAKAPIX_ACLS,
    FrameClient,
    MakapixBroker,
    PeriodicPublisher,
    Subscriber,
    backend_subscriber,
    foreign_pki,
    frame_client,
    require_mosquitto,
    restart_remote,
)
from tests.players_support import firmware_payload, view_topic

pytestmark = pytest.mark.integration
OUTAGE_S = float(os.environ.get("VTS_MAKAPIX_OUTAGE_S", "30"))


def new_key() -> str:
    return str(uuid.uuid4())


def report(key: str, n: int = 0) -> bytes:
    """A firmware-shaped View report, unformatted as the firmware sends it; ``n`` makes it
    distinct (the device timestamp moves by ``n`` seconds)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_795_514_400 + n))
    payload = firmware_payload("p3a_channel_reactions", player_key=key, timestamp=stamp)
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def remote() -> Iterator[BrokerProcess]:
    require_mosquitto()
    process = BrokerProcess(free_port())
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def makapix(remote: BrokerProcess) -> Iterator[MakapixBroker]:
    broker = MakapixBroker(remote_port=remote.port)
    try:
        broker.start()
        broker.wait_bridge_connected()
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def rule_side(remote: BrokerProcess) -> Iterator[Subscriber]:
    """Where IoT Core's rule sits: a subscriber to makapix/player/+/view on the remote."""
    subscriber = Subscriber(remote.port)
    yield subscriber
    subscriber.close()


def test_the_config_is_makapix_s_plus_the_bridge_block(makapix: MakapixBroker) -> None:
    lines = makapix.conf.read_text().splitlines()
    for line in ["persistence false", "allow_anonymous false", "user root",
                 "require_certificate true", "use_identity_as_username true",
                 "tls_version tlsv1.2", *BRIDGE_BLOCK, "local_cleansession false"]:
        assert line in lines
    assert any(line.startswith("crlfile ") for line in lines)
    # The bridge block is the one `vts register-bridge` prints, less its TLS files.
    assert makapix.remote is not None
    host, port = makapix.remote
    block = bridge_block(host, BRIDGE_NAME, port=port, tls=False).splitlines()
    assert lines[-len(block):] == block
    assert (makapix.folder / "acls").read_text() == MAKAPIX_ACLS
    assert "pattern write makapix/player/%u/view" in MAKAPIX_ACLS.splitlines()


def test_a_frame_s_own_report_reaches_the_remote_unchanged(
    makapix: MakapixBroker, rule_side: Subscriber
) -> None:
    key = new_key()
    backend = backend_subscriber(makapix)
    frame = frame_client(makapix, key)
    body = report(key)
    try:
        frame.publish(view_topic(key), body)
        assert rule_side.wait_for_payload(body)
        assert backend.wait_for_payload(body)  # Makapix's own API server still gets it
    finally:
        frame.close()
        backend.close()
    [got] = [r for r in rule_side.snapshot() if r.payload == body]
    assert (got.topic, got.payload) == (view_topic(key), body)


def test_another_frame_s_topic_is_acked_but_never_forwarded(
    makapix: MakapixBroker, rule_side: Subscriber
) -> None:
    key, victim = new_key(), new_key()
    backend = backend_subscriber(makapix)
    # The firmware's username is ignored: the certificate's CN is the username the ACL reads.
    frame = frame_client(makapix, key, username=victim)
    mark = makapix.log_mark()
    forged, marker = report(victim, 1), report(key, 2)
    try:
        frame.publish(view_topic(victim), forged)  # MQTT 3.1.1: mosquitto still PUBACKs
        frame.publish(view_topic(key), marker)  # same connection, same bridge: comes after
        assert rule_side.wait_for_payload(marker)
        assert backend.wait_for_payload(marker)
    finally:
        frame.close()
        backend.close()
    for side in (rule_side, backend):
        assert [r for r in side.snapshot() if r.topic == view_topic(victim) or r.payload == forged] == []
    denied = re.compile(rf"Denied PUBLISH from p3a-{key} \(.*'{view_topic(victim)}'")
    assert denied.search(makapix.log_since(mark)), makapix.log_tail()


def test_certificates_from_another_ca_or_none_are_refused_at_tls(
    makapix: MakapixBroker, tmp_path: Path
) -> None:
    key = new_key()
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
        frame_client(makapix, key, cert=foreign_pki(tmp_path / "other-ca").client(key))
    # No client certificate at all (require_certificate true).
    context = ssl.create_default_context(cafile=str(makapix.pki.ca_cert))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        pytest.raises(ssl.SSLError, match=r"CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE"),
        socket.create_connection(("127.0.0.1", makapix.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass


def test_a_revoked_certificate_is_refused_after_the_crl_reload(makapix: MakapixBroker) -> None:
    key = new_key()
    frame_client(makapix, key).close()
    makapix.pki.revoke(key)
    makapix.reload()  # what Makapix's watch-crl.sh does when crl.pem changes
    deadline = time.monotonic() + 10
    while True:
        try:
            frame_client(makapix, key).close()
        except ssl.SSLError as exc:
            assert "REVOKED" in str(exc)
            break
        assert time.monotonic() < deadline, "the revoked certificate is still accepted"
        time.sleep(0.2)
    frame_client(makapix, new_key()).close()  # the others still connect


# ---- the remote goes away ----------------------------------------------------------------


class Outage:
    """A fresh remote and Makapix broker; a frame reporting every ``interval`` s while the
    remote is stopped for ``outage_s`` and a new one started on the same port."""

    def __init__(self, **broker_options: object) -> None:
        self.remote = BrokerProcess(free_port())
        self.makapix = MakapixBroker(remote_port=self.remote.port, **broker_options)  # type: ignore[arg-type]
        self._rule_side: Subscriber | None = None
        self._frame: FrameClient | None = None
        self.key = new_key()
        try:
            self.remote.start()
            self.makapix.start()
            self.makapix.wait_bridge_connected()
            self._rule_side = Subscriber(self.remote.port)
            self._frame = frame_client(self.makapix, self.key)
        except BaseException:
            self.close()
            raise

    @property
    def rule_side(self) -> Subscriber:
        assert self._rule_side is not None
        return self._rule_side

    @property
    def frame(self) -> FrameClient:
        assert self._frame is not None
        return self._frame

    def run(self, outage_s: float, interval: float = 0.5, after_s: float = 2) -> None:
        reports = PeriodicPublisher(self.frame, lambda n: report(self.key, n), interval).start()
        time.sleep(1.5)
        self.remote.stop()
        self.down_at = time.monotonic()
        time.sleep(outage_s)
        mark = self.makapix.log_mark()
        self.remote = restart_remote(self.remote.port, self.makapix, self.rule_side)
        self.up_at = time.monotonic()
        self.makapix.wait_bridge_connected(timeout=45, since=mark)
        self.reconnected_at = time.monotonic()
        time.sleep(after_s)
        self.sent = reports.stop()
        self.during = [body for at, body in reports.sent if self.down_at <= at <= self.up_at]

    def close(self) -> None:
        if self._frame is not None:
            self._frame.close()
        if self._rule_side is not None:
            self._rule_side.close()
        self.makapix.cleanup()
        self.remote.stop()


@pytest.mark.slow
def test_reports_sent_while_the_remote_is_down_all_arrive_in_order(
    request: pytest.FixtureRequest,
) -> None:
    # restart_timeout "1 1" (a 1 s constant; the two-value form, which 2.0.11 honours) keeps
    # the test short; the block Makapix gets backs off from 2 s to 30 s ("2 30").
    outage = Outage(restart_timeout="1 1")
    try:
        outage.run(OUTAGE_S)
        sent = outage.sent
        assert outage.rule_side.wait_for(lambda got: {r.payload for r in got} >= set(sent), 15)
    finally:
        outage.close()
    received = [r.payload for r in outage.rule_side.snapshot()]
    counts = Counter(received)
    first_seen = list(dict.fromkeys(received))
    assert len(outage.during) >= 0.8 * OUTAGE_S / 0.5
    assert first_seen == sent  # every report, once at least, in the frame's order
    assert all(r.topic == view_topic(outage.key) for r in outage.rule_side.snapshot())
    measured = {
        "reports_sent": len(sent),
        "reports_during_outage": len(outage.during),
        "duplicates": sum(n - 1 for n in counts.values()),
        "bridge_connack_after_resume_s": round(outage.reconnected_at - outage.up_at, 2),
    }
    request.node.user_properties.extend(measured.items())
    print(f"outage of {OUTAGE_S:g} s: {measured}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "options"),
    [
        ("design_block_alone", {"bridge_settings": ()}),
        ("queue_limit", {"global_settings": ("max_queued_messages 3",)}),
    ],
)
def test_what_loses_the_reports_queued_during_an_outage(case: str, options: dict[str, object]) -> None:
    outage = Outage(restart_timeout="1 1", **options)
    try:
        outage.run(outage_s=3, interval=0.25, after_s=1.5)
        after = outage.sent[len(outage.sent) - 3:]  # sent once the bridge was back
        assert outage.rule_side.wait_for(lambda got: {r.payload for r in got} >= set(after), 15)
        log = outage.makapix.log_text()
    finally:
        outage.close()
    received = {r.payload for r in outage.rule_side.snapshot()}
    lost = [body for body in outage.during if body not in received]
    if case == "design_block_alone":
        # DESIGN's block as written (cleansession true, no local_cleansession false): the
        # whole queue is discarded when the bridge reconnects.
        assert lost == outage.during and len(lost) >= 8
    else:
        assert 0 < len(lost) < len(outage.during)
        assert "Outgoing messages are being dropped for client local.vts-bridge-makapix" in log
