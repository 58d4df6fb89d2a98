"""The local MQTT broker: amqtt (MQTT 3.1.1, plaintext, anonymous) on 127.0.0.1, as a child
process. IoT Core's stand-in for the local stack, the tests and the benchmark. Its
``RuleTap`` plugin (rule_tap.py) tells the local rule bridge who published each message,
as IoT Core's ``clientid()`` does.

Run alone: ``python scripts/vtsops/mqtt_broker.py --port 1883`` (prints ``ready`` once it
listens). ``BrokerProcess`` starts and stops it as a stack component.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve()


def broker_config(port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        # Only anonymous auth and the rule tap: no packet/event logging plugins, no $SYS topics.
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            "vtsops.rule_tap.RuleTap": {},
        },
    }


async def serve(port: int) -> None:
    from amqtt.broker import Broker

    broker = Broker(broker_config(port))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await broker.shutdown()


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class BrokerProcess:
    """The broker as a stack component (a child process, stopped in order)."""

    name = "mqtt"

    def __init__(self, port: int, log: Path | None = None) -> None:
        self.port = port
        self._log_path = log
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        if listening(self.port):
            raise RuntimeError(f"port {self.port} (VTS_MQTT_PORT) is in use; set VTS_MQTT_PORT to a free port")
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("ab")
        from vtsops.stack import die_with_parent

        # The child imports the rule tap (vtsops) and the rules (iot_rules) by name.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE.parents[2]), str(HERE.parents[1]), env.get("PYTHONPATH")) if p
        )
        self._process = subprocess.Popen(
            [sys.executable, str(HERE), "--port", str(self.port)],
            env=env,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,  # the stack's Ctrl-C handler stops it in order
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 20
        while not listening(self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"the MQTT broker exited (code {self._process.returncode})")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the MQTT broker did not come up within 20 s")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
