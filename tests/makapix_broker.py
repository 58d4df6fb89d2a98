"""Makapix Club's broker for the tests: Debian's real ``mosquitto`` configured as Makapix runs
it (fabkury/makapix ``mqtt/config/mosquitto.conf`` and ``acls``), with the bridge block VTS
asks Makapix to add (DESIGN §7) pointed at the local IoT stand-in, and frame-shaped clients
(the p3a firmware's ``makapix_mqtt.c``: MQTT 3.1.1, client id ``p3a-{key}``, username = key
with an empty password, mutual TLS with a certificate whose CN is the key).

    remote = BrokerProcess(free_port()); remote.start()          # IoT Core's stand-in
    makapix = MakapixBroker(remote_port=remote.port); makapix.start()
    frame = frame_client(makapix, key)                            # connected, looping
    frame.publish(view_topic(key), body)                          # waits for the PUBACK

Certificates are made with ``cryptography`` (installed with moto, which requires it), as
Makapix's own ``api/app/mqtt/cert_generator.py`` makes them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import free_port

MOSQUITTO = Path(os.environ.get("VTS_TEST_MOSQUITTO", "/usr/sbin/mosquitto"))
VIEW_FILTER = "makapix/player/+/view"
BACKEND_USER = "svc_backend"

# Makapix's acls file, verbatim in its grants (comments dropped). Mosquitto denies the rest.
MAKAPIX_ACLS = """\
user svc_backend
topic write makapix/player/+/command
topic read makapix/player/+/status
topic read makapix/player/+/request/+
topic write makapix/player/+/response/+
topic read makapix/player/+/view
topic write makapix/player/+/view/ack
topic read makapix/player/+/capabilities
topic read makapix/player/+/state
topic read makapix/player/+/command/ack
topic read $SYS/#

pattern read makapix/player/%u/command
pattern write makapix/player/%u/status
pattern write makapix/player/%u/request/+
pattern read makapix/player/%u/response/#
pattern write makapix/player/%u/view
pattern read makapix/player/%u/view/ack
pattern write makapix/player/%u/capabilities
pattern write makapix/player/%u/state
pattern write makapix/player/%u/command/ack
"""

# The bridge block as DESIGN §7 writes it, less the three bridge_* TLS lines (the local
# remote is plaintext amqtt); `address` is added by MakapixBroker. By default the harness
# uses instead the block `vts register-bridge` prints (vtsops.iot_provision.bridge_block),
# which adds what measurement showed is needed (mosquitto 2.0.11,
# tests/integration/test_makapix_broker.py):
# * `local_cleansession false`: `cleansession true` alone also cleans the bridge's *local*
#   session (local_cleansession defaults to cleansession), so every report queued during an
#   outage is discarded when the bridge reconnects; with it the queue is flushed, in order.
# * reconnection: the default `restart_timeout` is a jittered backoff, 5 s base, 30 s cap
#   (attempts seen at +5, +20, +51 s into an outage); in 2.0.11 a one-value
#   `restart_timeout N` is ignored (fixed in 2.0.15): the two-value form `base cap` works.
BRIDGE_BLOCK = (
    "connection vts",
    "bridge_protocol_version mqttv311",
    "remote_clientid vts-bridge-makapix",
    "topic makapix/player/+/view out 1",
    "try_private false",
    "notifications false",
    "cleansession true",
)
# The bridge's queue is bounded by the global, per-client `max_queued_messages` (1000 by
# default; then mosquitto logs "Outgoing messages are being dropped for client
# local.vts-bridge-makapix" and drops the rest). It is Makapix's to size: every frame's
# reports queue there during an outage (24 frames x 2 a minute: about 20 minutes at 1000).
GLOBAL_QUEUE_SETTINGS: tuple[str, ...] = ()
BRIDGE_NAME = "vts-bridge-makapix"


def require_mosquitto() -> None:
    if not MOSQUITTO.exists():
        pytest.skip(
            f"{MOSQUITTO} is missing: Debian's mosquitto is needed for the Makapix bridge tests "
            "(scripts/setup_system.sh installs it as root: apt-get install mosquitto)"
        )


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# ---- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCert:
    certfile: Path
    keyfile: Path
    serial: int


class Pki:
    """A throwaway CA in ``folder``: its certificate, a server certificate for 127.0.0.1
    (SAN IP:127.0.0.1 and DNS:localhost, CN localhost), a CRL, and client certificates as
    Makapix makes them (C=US, O=Makapix, CN=player key, SAN DNS:player-{key}, RSA 2048)."""

    def __init__(self, folder: Path, name: str = "Makapix Test CA") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._revoked: dict[int, datetime] = {}
        self._clients: dict[str, ClientCert] = {}
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )
        ca = self._sign(
            x509.CertificateBuilder()
            .subject_name(self._subject)
            .public_key(self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
        )
        self.ca_cert = self._write("ca.crt", _pem(ca))
        self._write("ca.key", _key_pem(self._key))
        server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        server = self._sign(
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .public_key(server_key.public_key())
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        )
        self.server_cert = self._write("server.crt", _pem(server))
        self.server_key = self._write("server.key", _key_pem(server_key))
        self.crl = self.folder / "crl.pem"
        self._write_crl()

    def client(self, player_key: str) -> ClientCert:
        """The frame's certificate and key (made once per key)."""
        if player_key not in self._clients:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Makapix"),
                    x509.NameAttribute(NameOID.COMMON_NAME, player_key),
                ]
            )
            cert = self._sign(
                x509.CertificateBuilder()
                .subject_name(subject)
                .public_key(key.public_key())
                .add_extension(
                    x509.SubjectAlternativeName([x509.DNSName(f"player-{player_key}")]),
                    critical=False,
                )
            )
            self._clients[player_key] = ClientCert(
                self._write(f"player-{player_key}.crt", _pem(cert)),
                self._write(f"player-{player_key}.key", _key_pem(key)),
                cert.serial_number,
            )
        return self._clients[player_key]

    def revoke(self, player_key: str) -> None:
        """Adds the frame's certificate to the CRL (mosquitto reads it at start and SIGHUP)."""
        self._revoked[self.client(player_key).serial] = datetime.now(UTC)
        self._write_crl()

    def _sign(self, builder: x509.CertificateBuilder, days: int = 30) -> x509.Certificate:
        now = datetime.now(UTC)
        return (
            builder.issuer_name(self._subject)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .sign(self._key, hashes.SHA256())
        )

    def _write_crl(self) -> None:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=30))
        )
        for serial, when in self._revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        self._write("crl.pem", crl.public_bytes(serialization.Encoding.PEM))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        path.chmod(0o644)  # readable if mosquitto ever drops to its own user
        return path


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def mosquitto_password_line(user: str, password: str) -> str:
    """A mosquitto 2.0 password file line (``$7$``: PBKDF2-SHA512, 101 rounds, as
    ``mosquitto_passwd`` writes it)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


# ---- the broker --------------------------------------------------------------------------


class MakapixBroker:
    """Debian's mosquitto as Makapix runs it, as a child process in its own session.

    Two listeners on 127.0.0.1, as Makapix's 1883 and 8883: ``backend_port`` (plaintext,
    password file: ``svc_backend``/``backend_password``, the API server) and ``port``
    (mutual TLS, ``require_certificate``, ``use_identity_as_username``, TLS 1.2, CRL: the
    frames). With ``remote_port`` it also bridges ``makapix/player/+/view`` out to
    ``remote_host:remote_port`` with the block ``vts register-bridge`` prints (less its TLS
    files), or, given ``bridge_settings``, with DESIGN §7's ``BRIDGE_BLOCK`` plus those
    lines; ``restart_timeout`` ("base cap") is appended last, so it wins. ``global_settings``
    go at the top level (default ``GLOBAL_QUEUE_SETTINGS``).
    """

    def __init__(
        self,
        remote_port: int | None = None,
        remote_host: str = "127.0.0.1",
        *,
        folder: Path | None = None,
        bridge_settings: Sequence[str] | None = None,
        global_settings: Sequence[str] = GLOBAL_QUEUE_SETTINGS,
        restart_timeout: str | None = None,
        log_type: Sequence[str] = ("all",),
    ) -> None:
        require_mosquitto()
        self.remote = (remote_host, remote_port) if remote_port is not None else None
        self._own_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="makapix-mosquitto-")) if folder is None else folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        self.pki = Pki(self.folder / "certs")
        self.port = free_port()
        self.backend_port = free_port()
        self.backend_password = secrets.token_hex(12)
        self.bridge_settings = None if bridge_settings is None else tuple(bridge_settings)
        self.restart_timeout = restart_timeout
        self.global_settings = tuple(global_settings)
        self.log_type = tuple(log_type)
        self.conf = self.folder / "mosquitto.conf"
        self.log_path = self.folder / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    # -- configuration

    def config_text(self) -> str:
        certs = self.pki
        lines = [
            "# Makapix Club's mosquitto.conf (fabkury/makapix mqtt/config/mosquitto.conf),",
            "# with test paths and ports on 127.0.0.1.",
            "persistence false",
            "allow_anonymous false",
            f"acl_file {self.folder / 'acls'}",
            f"password_file {self.folder / 'passwords'}",
            "user root",
            "# test only: a log file (Makapix logs to stdout), more of it, readable timestamps",
            f"log_dest file {self.log_path}",
            *(f"log_type {kind}" for kind in self.log_type),
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            *self.global_settings,
            "",
            "# Makapix's 1883: the API server (svc_backend, password file)",
            f"listener {self.backend_port} 127.0.0.1",
            "",
            "# Makapix's 8883: the frames (mutual TLS, CN = player key)",
            f"listener {self.port} 127.0.0.1",
            f"cafile {certs.ca_cert}",
            f"certfile {certs.server_cert}",
            f"keyfile {certs.server_key}",
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
            f"crlfile {certs.crl}",
        ]
        if self.remote is not None:
            lines += ["", "# VTS's bridge (DESIGN §7), to the local IoT stand-in (plaintext)"]
            lines += self.bridge_lines()
        return "\n".join(lines) + "\n"

    def bridge_lines(self) -> list[str]:
        assert self.remote is not None
        host, port = self.remote
        if self.bridge_settings is None:
            from vtsops.iot_provision import bridge_block

            block: str = bridge_block(host, BRIDGE_NAME, port=port, tls=False)
            lines = block.splitlines()
        else:
            lines = [BRIDGE_BLOCK[0], f"address {host}:{port}", *BRIDGE_BLOCK[1:]]
            lines += self.bridge_settings
        if self.restart_timeout is not None:
            lines.append(f"restart_timeout {self.restart_timeout}")
        return lines

    def _write_config(self) -> None:
        (self.folder / "acls").write_text(MAKAPIX_ACLS)
        (self.folder / "passwords").write_text(
            mosquitto_password_line(BACKEND_USER, self.backend_password) + "\n"
        )
        self.conf.write_text(self.config_text())
        for name in ("acls", "passwords", "mosquitto.conf"):
            (self.folder / name).chmod(0o644)

    # -- process

    def start(self, timeout: float = 10) -> None:
        if self._process is not None:
            raise RuntimeError("mosquitto is already running")
        self._write_config()
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                [str(MOSQUITTO), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not (listening(self.port) and listening(self.backend_port)):
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"mosquitto exited (code {code}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"mosquitto did not listen within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process, signal.SIGCONT)  # in case it was paused
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)

    def reload(self) -> None:
        """SIGHUP, as Makapix's watch-crl.sh sends when crl.pem changes."""
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("mosquitto is not running")
        self._process.send_signal(signal.SIGHUP)

    def pause(self) -> None:
        """SIGSTOP: nothing moves (the bridge neither reconnects nor flushes) until resume()."""
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("mosquitto is not running")
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        self.stop()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> MakapixBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- log

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_mark(self) -> int:
        """A position in the log (bytes); ``wait_for_log(..., since=mark)`` reads only what
        follows it."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark: int) -> str:
        return self._log_bytes(mark).decode(errors="replace")

    def _log_bytes(self, mark: int) -> bytes:
        try:
            with self.log_path.open("rb") as log:
                log.seek(mark)
                return log.read()
        except FileNotFoundError:
            return b""

    def wait_for_log(self, needle: str, timeout: float = 10, since: int = 0) -> bool:
        """Waits for ``needle`` in the log after ``since``, reading only what is new."""
        wanted = needle.encode()
        deadline = time.monotonic() + timeout
        position, tail = since, b""
        while True:
            chunk = self._log_bytes(position)
            position += len(chunk)
            tail += chunk
            if wanted in tail:
                return True
            tail = tail[-len(wanted):]
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def wait_bridge_connected(self, timeout: float = 15, since: int = 0) -> None:
        """Waits for the bridge's CONNACK from the remote (logged at debug level)."""
        if not self.wait_for_log("Received CONNACK on connection local.vts-bridge-makapix", timeout, since):
            raise TimeoutError(f"the bridge did not connect within {timeout} s:\n{self.log_tail()}")


def _die_with_parent() -> None:
    from vtsops.stack import die_with_parent

    die_with_parent()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


# ---- clients -----------------------------------------------------------------------------


class FrameClient:
    """A p3a frame's connection to Makapix's broker (makapix_mqtt.c): MQTT 3.1.1, client id
    ``p3a-{key}``, username = key and an empty password, keepalive 60, clean session, a
    QoS 1 last will on its status topic, mutual TLS with its own certificate."""

    def __init__(
        self,
        broker: MakapixBroker,
        player_key: str,
        *,
        username: str | None = None,
        cert: ClientCert | None = None,
        ca_certs: Path | None = None,
        timeout: float = 10,
    ) -> None:
        self.key = player_key
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connack: queue.Queue[Any] = queue.Queue()
        cert = cert or broker.pki.client(player_key)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"p3a-{player_key}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        # tls_set(ca_certs=..., certfile=..., keyfile=...), capped at TLS 1.2 as the
        # firmware's mbedTLS is (Makapix's `tls_version tlsv1.2` is a minimum: 1.3 is allowed).
        context = ssl.create_default_context(cafile=str(ca_certs or broker.pki.ca_cert))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert.certfile), str(cert.keyfile))
        client.tls_set_context(context)
        client.username_pw_set(username if username is not None else player_key, "")
        client.will_set(
            f"makapix/player/{player_key}/status",
            json.dumps({"player_key": player_key, "status": "offline"}, separators=(",", ":")),
            qos=1,
        )
        client.on_connect = lambda _c, _u, _f, reason, _p: self._connack.put(reason)
        client.on_disconnect = lambda _c, _u, _f, reason, _p: self._connack.put(reason)
        client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client = client
        # TCP and the TLS handshake happen here: a certificate the broker refuses raises
        # ssl.SSLError (TLS 1.2: the alert arrives during the handshake).
        client.connect("127.0.0.1", broker.port, keepalive=60)
        client.loop_start()
        try:
            reason = self._connack.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise TimeoutError(f"no CONNACK for p3a-{player_key} within {timeout} s") from None
        if reason.is_failure:  # a refusing CONNACK, or the connection closed before it
            self.close()
            raise ConnectionRefusedError(f"p3a-{player_key} refused: {reason}")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, timeout: float = 10) -> int:
        """Publishes and, for QoS 1, waits for the broker's PUBACK; returns the message id."""
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK for message {info.mid} on {topic} within {timeout} s")
        return info.mid

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def frame_client(broker: MakapixBroker, player_key: str, **options: Any) -> FrameClient:
    """A connected, looping frame-shaped client (see ``FrameClient``). Options: ``username``
    (what the firmware sends; the broker uses the certificate's CN instead), ``cert`` (e.g.
    ``foreign_pki(folder).client(key)``), ``ca_certs``, ``timeout``. A certificate the broker
    refuses raises ``ssl.SSLError``."""
    return FrameClient(broker, player_key, **options)


@dataclass
class Received:
    topic: str
    payload: bytes
    at: float


class Subscriber:
    """A plain MQTT 3.1.1 subscriber that records what arrives (on the remote stand-in, or on
    Makapix's backend listener as ``svc_backend``). It reconnects by itself, quickly (every
    ``reconnect_s``), and subscribes again on every connection: a restarted amqtt remembers
    no session, so even a ``clean_session=False`` client must subscribe again."""

    def __init__(
        self,
        port: int,
        topics: Iterable[str] = (VIEW_FILTER,),
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        username: str | None = None,
        password: str | None = None,
        reconnect_s: float = 0.05,
        timeout: float = 10,
    ) -> None:
        self.port = port
        self.topics = list(topics)
        self.received: list[Received] = []
        self.subscriptions = 0  # SUBACKs so far (one per connection)
        self._changed = threading.Condition()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sub-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        if username is not None:
            client.username_pw_set(username, password)
        client.reconnect_delay_set(min_delay=reconnect_s, max_delay=reconnect_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        if not self.wait_subscribed(0, timeout):
            self.close()
            raise TimeoutError(f"could not subscribe on 127.0.0.1:{port} within {timeout} s")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, *_args: Any) -> None:
        with self._changed:
            self.subscriptions += 1
            self._changed.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.received.append(Received(message.topic, bytes(message.payload), time.monotonic()))
            self._changed.notify_all()

    def wait_subscribed(self, after: int, timeout: float = 10) -> bool:
        """Waits for a subscription beyond the first ``after`` (``after=self.subscriptions``
        read before a remote restart waits for the subscription on the new remote)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.subscriptions > after, timeout)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10) -> bool:
        """Waits until ``predicate(received so far)`` holds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self.received)), timeout)

    def wait_for_payload(self, payload: bytes, timeout: float = 10) -> bool:
        return self.wait_for(lambda got: any(r.payload == payload for r in got), timeout)

    def snapshot(self) -> list[Received]:
        with self._changed:
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class PeriodicPublisher:
    """A frame reporting every ``interval`` s from a thread, as the firmware repeats a View
    report: report ``n`` is ``payload(n)``; ``sent`` keeps (time, payload) once PUBACKed."""

    def __init__(
        self,
        frame: FrameClient,
        payload: Callable[[int], bytes],
        interval: float = 0.5,
        puback_timeout: float = 30,
    ) -> None:
        self.frame = frame
        self.payload = payload
        self.interval = interval
        self.puback_timeout = puback_timeout
        self.topic = f"makapix/player/{frame.key}/view"
        self.sent: list[tuple[float, bytes]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reports-{frame.key[:8]}", daemon=True)

    def start(self) -> PeriodicPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        try:
            while not self._stop.is_set():
                body = self.payload(n)
                self.frame.publish(self.topic, body, timeout=self.puback_timeout)
                self.sent.append((time.monotonic(), body))
                n += 1
                self._stop.wait(self.interval)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> list[bytes]:
        self._stop.set()
        self._thread.join(self.puback_timeout + 5)
        if self.error is not None:
            raise self.error
        return [body for _, body in self.sent]


def restart_remote(
    remote_port: int, makapix: MakapixBroker, subscriber: Subscriber | None = None
) -> Any:
    """Starts a new amqtt remote (``BrokerProcess``) on ``remote_port`` while mosquitto is
    paused, and resumes mosquitto once ``subscriber`` has subscribed on it: the bridge flushes
    its queue into a remote whose reader is already there, as IoT Core's rule always is (an
    amqtt remote with nobody subscribed acknowledges and drops). Returns the new remote."""
    from vtsops.mqtt_broker import BrokerProcess

    before = subscriber.subscriptions if subscriber is not None else 0
    remote = BrokerProcess(remote_port)
    makapix.pause()
    try:
        remote.start()
        if subscriber is not None and not subscriber.wait_subscribed(before, 15):
            raise TimeoutError("the subscriber did not subscribe on the restarted remote")
    finally:
        makapix.resume()
    return remote


def backend_subscriber(broker: MakapixBroker, **options: Any) -> Subscriber:
    """Makapix's API server on its internal listener, as ``svc_backend``, reading the views."""
    return Subscriber(
        broker.backend_port, username=BACKEND_USER, password=broker.backend_password, **options
    )


def foreign_pki(folder: Path) -> Pki:
    """Another CA (the frame's certificate comes from elsewhere): ``.client(key)`` for a
    certificate with the right CN that Makapix's broker must refuse."""
    return Pki(folder, name="Not Makapix CA")


__all__ = [
    "BACKEND_USER",
    "BRIDGE_BLOCK",
    "BRIDGE_NAME",
    "GLOBAL_QUEUE_SETTINGS",
    "VIEW_FILTER",
    "ClientCert",
    "FrameClient",
    "MakapixBroker",
    "PeriodicPublisher",
    "Pki",
    "Received",
    "Subscriber",
    "backend_subscriber",
    "foreign_pki",
    "frame_client",
    "require_mosquitto",
    "restart_remote",
]
