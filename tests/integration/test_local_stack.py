"""The local stack as ``make run`` starts it (scripts/local_stack.py, one process with its
children), on free ports: it holds its listening ports against its own connections, its API
takes a burst of clients, and Ctrl-C stops all of it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from vtsops.stack import interrupt

from tests.conftest import BROWSER_UA, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PORTS = ("VTS_HTTP_PORT", "VTS_AWS_PORT", "VTS_MQTT_PORT")
BURST_CLIENTS = 128

# The stack, with its demo seeding made to do the worst its connections to moto can do: one
# of them has the API's port as its local end and leaves it in TIME_WAIT. The kernel may
# pick any free port of the ephemeral range so (NOTES, "Local stack"): it once made
# `VTS_HTTP_PORT=48000 make run` fail with "Address already in use".
WRAPPER = """
import os, socket, sys
from pathlib import Path

root = Path(sys.argv[1])
sys.path[:0] = [str(root), str(root / "scripts")]
from vtsops import localstack

real_seed = localstack._seed


def seed(looks):
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", int(os.environ["VTS_HTTP_PORT"])))
        sock.connect(("127.0.0.1", int(os.environ["VTS_AWS_PORT"])))
        print("SEED took the API port", flush=True)
    except OSError as error:
        print(f"SEED could not take the API port: {error}", flush=True)
    finally:
        sock.close()
    real_seed(looks)


localstack._seed = seed
sys.exit(localstack.main(sys.argv[2:]))
"""


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['VTS_HTTP_PORT']}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if "local stack ready at" in line:
                self.ready.set()
        self.ready.set()  # it exited: stop waiting


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    home = tmp_path_factory.mktemp("stack-home")
    wrapper = home / "stack_with_worst_seeding.py"
    wrapper.write_text(WRAPPER)
    ports = {name: free_port() for name in PORTS}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTS_")}
    env.update({name: str(port) for name, port in ports.items()})
    process = subprocess.Popen(
        [sys.executable, str(wrapper), str(ROOT), "--looks", "40", "--home", str(home)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = RunningStack(process, ports)
    threading.Thread(target=running.read, daemon=True).start()
    try:
        running.ready.wait(180)
        yield running
    finally:
        interrupt(process, 30)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_stack_holds_its_ports_against_its_own_connections(stack: RunningStack) -> None:
    assert "local stack ready at" in stack.output, stack.output
    # The seeding could not take the API's port: the stack held it from its first moment.
    assert "SEED could not take the API port" in stack.output, stack.output
    assert f"VTS local stack ready at {stack.url}" in stack.output
    for label in ("API ", "Record ", "Dashboard ", "DynamoDB ", "MQTT ", "Settings "):
        assert any(line.strip().startswith(label) for line in stack.lines), label
    assert all(listening(port) for port in stack.ports.values())
    connection = http.client.HTTPConnection("127.0.0.1", stack.ports["VTS_HTTP_PORT"], timeout=10)
    connection.request("GET", "/v1/health")
    answer = connection.getresponse()
    assert answer.status == 200
    assert json.loads(answer.read())["status"] == "ok"
    connection.close()


def test_the_api_takes_a_burst_of_clients_without_a_reset(stack: RunningStack) -> None:
    assert stack.ready.is_set() and stack.process.poll() is None, stack.output
    start = threading.Barrier(BURST_CLIENTS)
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        connection = http.client.HTTPConnection(
            "127.0.0.1", stack.ports["VTS_HTTP_PORT"], timeout=60
        )
        start.wait(30)
        try:
            # Every client at once: the connections queue in the listen backlog.
            connection.request(
                "POST",
                f"/v1/posts/{1 + n % 12}/views",
                body=b"{}",
                headers={
                    "Content-Type": "text/plain",
                    "User-Agent": BROWSER_UA,
                    "X-Forwarded-For": f"23.45.{n // 250}.{1 + n % 250}",
                },
            )
            answer = connection.getresponse()
            answer.read()
            with lock:
                statuses[answer.status] += 1
        except OSError as error:
            with lock:
                errors.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(BURST_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sum(statuses.values()) == BURST_CLIENTS
    assert set(statuses) <= {201, 204}, statuses


def test_a_port_held_by_a_closed_connection_is_waited_for_not_taken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vtsops.localstack import _reserve
    from vtsops.stack import PortReservation

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        # Any process's outgoing connection may use a port of the ephemeral range; closed
        # first on its side, it holds the port in TIME_WAIT for a minute.
        port = free_port()
        client = socket.socket()
        client.bind(("127.0.0.1", port))
        client.connect(server.getsockname())
        accepted = server.accept()[0]
        client.close()
        accepted.close()
        reserved = PortReservation()
        try:
            started = time.monotonic()
            assert not _reserve(reserved, "VTS_HTTP_PORT", port, wait_s=1)
            assert time.monotonic() - started >= 1
            assert "held by a closed connection" in capsys.readouterr().out
            # A listening server is no closed connection: no wait.
            assert not _reserve(reserved, "VTS_AWS_PORT", server.getsockname()[1], wait_s=30)
            assert capsys.readouterr().out == ""
            # A free port is held until released; a server with SO_REUSEADDR binds it meanwhile.
            free = free_port()
            assert _reserve(reserved, "VTS_MQTT_PORT", free)
            with socket.socket() as other, pytest.raises(OSError):
                other.bind(("127.0.0.1", free))
            with socket.socket() as listener:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", free))
                listener.listen()
                reserved.close()
                assert listening(free)
        finally:
            reserved.close()


def test_ctrl_c_stops_everything(stack: RunningStack) -> None:
    assert stack.process.poll() is None, stack.output
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(30) == 0, stack.output
    deadline = time.monotonic() + 10
    while any(listening(port) for port in stack.ports.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(listening(port) for port in stack.ports.values())
    assert stack.lines[-1] == "stopped", stack.output
