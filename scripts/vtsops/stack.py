"""The local stack: moto (DynamoDB + Streams), the API under ``chalice local``, and the
stand-ins for AWS triggers. One process; Ctrl-C stops all of it.

Run as ``python -m vtsops.stack api --port N`` it is the API's own process: chalice's local
server (the one ``chalice local`` runs) with a listen backlog and a thread per connection
fit for a burst of clients (``ChaliceLocalComponent`` starts it so).
"""

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


class PortReservation:
    """Holds the stack's listening ports from its first moment until its servers listen.

    A socket bound to a port (not listening) keeps the kernel from choosing that port as
    the local end of an outgoing connection. Without it the stack's own connections (the
    demo seeding makes hundreds to moto) could land on, say, ``VTS_HTTP_PORT=48000`` in
    the ephemeral range and leave it in TIME_WAIT just before the API binds it: "Address
    already in use". The servers (werkzeug for moto, amqtt, the API's HTTPServer) bind
    with SO_REUSEADDR, as the reservation does, which Linux allows beside a bound socket
    that does not listen; once they listen the reservation is closed.

    Elsewhere than Linux (where that rule differs) it only checks that the ports are free.
    """

    def __init__(self) -> None:
        self._sockets: dict[int, socket.socket] = {}

    def reserve(self, port: int) -> None:
        """Bind ``port`` on 127.0.0.1; OSError when it is in use."""
        if port in self._sockets:
            raise ValueError(f"port {port} is reserved twice")
        if not sys.platform.startswith("linux"):
            if not port_free(port):
                raise OSError(f"port {port} is in use")
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        self._sockets[port] = sock

    def release(self, port: int) -> None:
        sock = self._sockets.pop(port, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for port in list(self._sockets):
            self.release(port)


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
    """The API as ``chalice local`` serves it (app.py on chalice's local server, playing API
    Gateway), as a child process with the stack's environment; its server takes a burst
    (``serve_api``)."""

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
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._env}
        # The child imports this module by name (vtsops) and app.py from the project.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), str(ROOT / "scripts"), env.get("PYTHONPATH")) if p
        )
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "vtsops.stack", "api", "--port", str(self.port),
                 "--stage", "dev"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C handler stops it in order
                preexec_fn=die_with_parent,
            )

        def up() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"the API exited (code {self._process.returncode}): "
                    f"{_last_line(self._log_path)} (see {self._log_path})"
                )
            return http_ok(f"{self.url}/v1/health")

        wait_for(up, 60, "the API (chalice local)")

    def stop(self) -> None:
        if self._process:
            interrupt(self._process, 5)


def interrupt(process: subprocess.Popen[Any], timeout_s: float) -> None:
    """Ctrl-C a child, as a person would; kill it if it has not stopped within ``timeout_s``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


# The API server's listen backlog: a burst of clients connecting at once waits in it
# instead of being reset (the kernel caps it at net.core.somaxconn, 4096 on this machine).
# ``chalice local`` keeps socketserver's default of 5.
API_BACKLOG = 1024


def serve_api(host: str, port: int, stage: str, backlog: int = API_BACKLOG) -> None:
    """What ``chalice local --no-autoreload`` does, on a server for a burst: the listen
    backlog raised from 5 to ``backlog``, one daemon thread per connection (so every
    kept-alive client has its own), SO_REUSEADDR (the stack's port reservation relies
    on it)."""
    import logging

    from chalice import local
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes

    class BurstHTTPServer(local.ThreadedHTTPServer):
        request_queue_size = backlog
        daemon_threads = True
        allow_reuse_address = True

    os.environ["AWS_CHALICE_CLI_MODE"] = "true"  # as the chalice CLI sets it
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    factory = CLIFactory(str(ROOT), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)
    app_obj = config.chalice_app
    validate_routes(app_obj.routes)
    # local.create_local_server, with our server class.
    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_obj.__class__)
    app_obj.__class__ = local.CustomLocalChalice
    server = local.LocalDevServer(app_obj, config, host, port, server_cls=BurstHTTPServer)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server.server_close()


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vtsops.stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api", help="serve app.py like chalice local, for a burst")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--stage", default="dev")
    api.add_argument("--backlog", type=int, default=API_BACKLOG)
    args = parser.parse_args(argv)
    serve_api(args.host, args.port, args.stage, args.backlog)
    return 0


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
