"""The local stack: moto (DynamoDB + Streams), the API under ``chalice local``, and the
stand-ins for AWS triggers. One process; Ctrl-C stops all of it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[2]


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def die_with_parent() -> None:
    """``preexec_fn`` for the stack's child processes: on Linux, the kernel sends SIGTERM to
    the child when the stack dies, even by SIGKILL, so no broker or API outlives it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not come up within {timeout_s:.0f} s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


class MotoComponent:
    """moto in server mode on 127.0.0.1: the embedded DynamoDB with Streams."""

    name = "moto"

    def __init__(self, port: int) -> None:
        from moto.server import ThreadedMotoServer

        self.port = port
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # moto's werkzeug server logs every request; the stack's output is for people.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        wait_for(lambda: http_ok(f"{self.endpoint}/moto-api/data.json"), 30, "moto")

    def stop(self) -> None:
        self._server.stop()


class ChaliceLocalComponent:
    """``chalice local`` serving app.py, as a child process with the stack's environment."""

    name = "api"

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self._env = env
        self._log_path = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        chalice = Path(sys.executable).with_name("chalice")
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(chalice),
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--stage",
                "dev",
                "--no-autoreload",
            ],
            cwd=ROOT,
            env={**os.environ, **self._env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C handler stops it in order
            preexec_fn=die_with_parent,
        )

        def up() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"chalice local exited; see {self._log_path}")
            return http_ok(f"{self.url}/v1/health")

        wait_for(up, 60, "the API (chalice local)")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()


@dataclass
class Stack:
    """Starts components in order and stops them in reverse."""

    components: list[Any] = field(default_factory=list)
    started: list[Any] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self, component: Any) -> Any:
        component.start()
        self.started.append(component)
        return component

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        for component in reversed(self.started):
            try:
                component.stop()
            except Exception as error:
                print(f"  stopping {component.name}: {error}", file=sys.stderr)
        self.started.clear()
