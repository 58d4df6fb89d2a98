"""Entry point of the local stack (``make run``)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vtsops.localenv import local_environment, write_env_file
from vtsops.stack import ROOT, ChaliceLocalComponent, MotoComponent, PortReservation, Stack

PORTS = ("VTS_HTTP_PORT", "VTS_AWS_PORT", "VTS_MQTT_PORT")

# curl's own user agent is (rightly) a bot: the example pretends to be a browser.
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def _print(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="local_stack", description=__doc__)
    parser.add_argument("--no-seed", action="store_true", help="start without demo data")
    parser.add_argument("--looks", type=int, default=2000, help="demo looks to record (2000)")
    parser.add_argument(
        "--home",
        type=Path,
        default=ROOT,
        help="where this run's .vts/ (settings file, API log) goes (default: the project); "
        "a second stack beside `make run` leaves the first one's settings alone",
    )
    args = parser.parse_args(argv)
    if args.looks < 0:
        parser.error("--looks must be >= 0")

    try:
        env = local_environment(ROOT, fresh_secrets=True)
    except ValueError as error:
        _print(f"error: {error}")
        return 2
    if len({env[name] for name in PORTS}) < len(PORTS):
        _print("error: " + ", ".join(f"{name}={env[name]}" for name in PORTS) + " must differ")
        return 2
    # The listening ports are held from now on: none of the stack's own connections (the
    # seeding's, moto's polling) can take one of them before its server binds it.
    reserved = PortReservation()
    for name in PORTS:
        if not _reserve(reserved, name, int(env[name])):
            reserved.close()
            _print(f"error: port {env[name]} ({name}) is in use; set {name} to a free port")
            return 2
    os.environ.update(env)
    env_path = write_env_file(args.home, env)

    stack = Stack()
    stopped = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        _print("== starting moto (DynamoDB + Streams)")
        moto = stack.start(MotoComponent(int(env["VTS_AWS_PORT"])))
        services = _services()
        from chalicelib.storage.provision import ensure_tables

        names = services.settings.table_names()
        ensure_tables(services.client, names)
        _print(f"   tables: {', '.join(names.values())} at {moto.endpoint}")
        for component in _triggers(services):
            _print(f"== starting {component.name}")
            stack.start(component)
        if not args.no_seed:
            _seed(args.looks)
        _print("== starting the API (chalice local)")
        api = stack.start(
            ChaliceLocalComponent(int(env["VTS_HTTP_PORT"]), env, args.home / ".vts" / "api.log")
        )
        reserved.close()  # every server listens on its port now
        _banner(api.url, env, env_path)
        while not stopped.wait(0.5):
            pass
        _print("\n== stopping")
    except Exception as error:
        _print(f"error: {error}")
        return 1
    finally:
        reserved.close()
        stack.stop()
    _print("stopped")
    return 0


def _reserve(reserved: PortReservation, name: str, port: int, wait_s: float = 65) -> bool:
    """Reserve ``port``; when nothing listens on it but a closed connection still holds it
    (TIME_WAIT: any process's outgoing connection may have used a port of the ephemeral
    range), wait until the kernel frees it, a minute at most. False: it stays in use."""
    deadline: float | None = None
    try:
        while True:
            try:
                reserved.reserve(port)
                return True
            except OSError:
                if listening(port):
                    return False
                if deadline is None:
                    deadline = time.monotonic() + wait_s
                    _print(f"   port {port} ({name}) is held by a closed connection; waiting "
                           f"for the kernel to free it (at most {wait_s:.0f} s)")
                elif time.monotonic() > deadline:
                    return False
                time.sleep(1)
    except KeyboardInterrupt:
        return False


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _services(clock: Any = None) -> Any:
    from chalicelib.config import get_settings
    from chalicelib.wiring import dynamodb_services

    return dynamodb_services(get_settings(), clock=clock)


def _triggers(services: Any) -> list[Any]:
    """Stand-ins for AWS triggers (MQTT broker + IoT bridge, stream pump, scheduler)."""
    try:
        from vtsops.triggers import local_triggers
    except ImportError:
        return []
    return list(local_triggers(services))


def _seed(looks: int) -> None:
    from chalicelib.clock import FixedClock
    from vtsops.progress import bar
    from vtsops.seed import seed_demo

    now = datetime.now(UTC)
    services = _services(FixedClock(now))
    # The demo's pixel art is served by the API itself (/demo-art/, listed in VTS_ART_ORIGINS).
    art_base = f"http://127.0.0.1:{os.environ['VTS_HTTP_PORT']}"
    with bar(looks, "seeding demo looks") as advance:
        outcome = seed_demo(services, looks=looks, now=now, progress=advance, art_base=art_base)
    _print(
        f"   demo data: {outcome['counted']} views counted, {outcome['other']} other looks "
        f"(frames: {outcome['frame_views']} views, {outcome['frame_impressions']} impressions)"
    )
    _frames_report_live()


def _frames_report_live() -> None:
    """Each demo frame sends one report now over MQTT, as a p3a does, through the broker and
    the IoT bridge (today's figures then include frames, live)."""
    from vtsops.player_sim import SimulatedPlayer, Simulation, simulate
    from vtsops.seed import DEMO_PLAYERS, DEMO_POSTS, demo_player_key

    players = [SimulatedPlayer(demo_player_key(n)) for n in range(1, len(DEMO_PLAYERS) + 1)]
    sim = Simulation(
        players=players,
        posts=list(range(1, DEMO_POSTS + 1)),
        messages=len(players),
        rate=50.0,
        artwork_share=0.5,
        retransmit_share=0.0,
        port=int(os.environ["VTS_MQTT_PORT"]),
    )
    try:
        report = simulate(sim)
    except Exception as error:  # the demo goes on without them
        _print(f"   demo frames could not report over MQTT: {error}")
        return
    _print(f"   demo frames: {report.reports} reports sent over MQTT ({len(players)} frames)")


def _banner(api_url: str, env: dict[str, str], env_path: Any) -> None:
    from chalicelib.auth import issue_token

    token = issue_token(env["VTS_JWT_SECRET"], sub="artist-1", role="artist", now=datetime.now(UTC))
    _print("")
    _print(f"  API        {api_url}/v1/health")
    _print(
        f"  Record     curl -X POST {api_url}/v1/posts/1/views -H 'Content-Type: text/plain' -d '{{}}'"
    )
    _print(f"  Dashboard  {api_url}/dashboard#token={token}")
    _print(f"  DynamoDB   {env['VTS_DYNAMODB_ENDPOINT']}  (moto)")
    _print(f"  MQTT       mqtt://127.0.0.1:{env['VTS_MQTT_PORT']}")
    _print(f"  Settings   {env_path}  (scripts/vts reads it)")
    _print("")
    _print(f"VTS local stack ready at {api_url} — Ctrl-C to stop")
