"""``vts register-player`` and ``vts simulate-players``: provisioning frames and playing a
fleet of them (docs/players.md).

``register-player`` creates the player's IoT thing, keys, certificate and the shared player
policy (against AWS, or moto with ``--iot-endpoint``), writes the key files to a directory,
then writes the registry entry. ``simulate-players`` publishes firmware-shaped reports from
N players to the local broker (plaintext) or to IoT Core (mutual TLS, one certificate per
player, as written by ``register-player``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vtsops.stack import ROOT

DEFAULT_KEYS_DIR = ROOT / ".vts" / "players"


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Callable[[argparse.Namespace], int]],
) -> None:
    reg = sub.add_parser("register-player", help="provision a player in IoT Core and register it")
    reg.add_argument("--owner", required=True, help="the owner's user id (the player's Visitor)")
    reg.add_argument("--player-key", help="the player's UUID (a new one when omitted)")
    reg.add_argument("--country", help="ISO 3166 alpha-2 country its views count in")
    reg.add_argument("--timezone", help="IANA timezone of the player")
    reg.add_argument("--out", type=Path, default=DEFAULT_KEYS_DIR,
                     help=f"directory for the key files (default {DEFAULT_KEYS_DIR})")
    reg.add_argument("--policy-name", help="the shared player policy (default vts-{stage}-player)")
    reg.add_argument("--iot-endpoint", default=os.environ.get("VTS_IOT_ENDPOINT"),
                     help="IoT control-plane endpoint override, e.g. moto (env VTS_IOT_ENDPOINT)")
    reg.add_argument("--no-iot", action="store_true", help="only write the registry entry")
    commands["register-player"] = cmd_register_player

    sim = sub.add_parser("simulate-players", help="publish firmware-shaped view reports from N players")
    sim.add_argument("--players", type=int, default=5, help="simulated players (5)")
    sim.add_argument("--messages", type=int, default=200, help="reports to publish (200)")
    sim.add_argument("--rate", type=float, default=20.0, help="reports per second, all players (20)")
    sim.add_argument("--posts", default="1-12", help="post ids, e.g. 1-12 or 3,5,8 (1-12: the demo posts)")
    sim.add_argument("--artwork", type=float, default=0.3, help="share of 'artwork' intents (0.3)")
    sim.add_argument("--unset-clock", type=float, default=0.2, help="share of players with no clock (0.2)")
    sim.add_argument("--retransmit", type=float, default=0.05, help="share of reports sent twice (0.05)")
    sim.add_argument("--ack", type=float, default=0.1, help="share of reports asking for an ack (0.1)")
    sim.add_argument("--ack-wait", type=float, default=3.0, help="seconds to wait for the last acks (3)")
    sim.add_argument("--seed", type=int, default=7, help="random seed (player keys included)")
    sim.add_argument("--host", default="127.0.0.1", help="plaintext broker host (127.0.0.1)")
    sim.add_argument("--port", type=int, default=int(os.environ.get("VTS_MQTT_PORT") or 1883),
                     help="plaintext broker port (VTS_MQTT_PORT, 1883)")
    sim.add_argument("--no-register", action="store_true",
                     help="do not register the simulated players (plaintext mode)")
    sim.add_argument("--owner-prefix", default="sim-owner-", help="owners of registered players")
    sim.add_argument("--endpoint", help="AWS IoT data endpoint: mutual TLS on 8883 instead")
    sim.add_argument("--cert-dir", type=Path, default=DEFAULT_KEYS_DIR,
                     help="with --endpoint: the register-player output directory")
    sim.add_argument("--cert", type=Path, help="with --endpoint: one player's certificate")
    sim.add_argument("--key", type=Path, help="with --endpoint: that player's private key")
    sim.add_argument("--player-key", help="with --cert/--key: that player's key")
    sim.add_argument("--ca", type=Path, help="with --endpoint: Amazon Root CA 1 (AmazonRootCA1.pem)")
    sim.add_argument("--json", action="store_true", help="print the summary as JSON")
    commands["simulate-players"] = cmd_simulate_players


def _fail(message: str, code: int = 2) -> int:
    print(f"vts: error: {message}", file=sys.stderr)
    return code


# ---- register-player ---------------------------------------------------------------------


def cmd_register_player(args: argparse.Namespace) -> int:
    from chalicelib.config import get_settings
    from chalicelib.errors import VTSError
    from chalicelib.players.directory import check_country, check_player_key, check_timezone
    from chalicelib.registry.posts import check_owner_id
    from chalicelib.wiring import dynamodb_services
    from vtsops.iot_provision import iot_client, provision_player

    settings = get_settings()
    try:
        # Validate everything before creating anything in IoT.
        key = check_player_key(args.player_key or str(uuid.uuid4()))
        check_owner_id(args.owner)
        check_country(args.country)
        check_timezone(args.timezone)
    except VTSError as error:
        return _fail(error.message)
    provisioned = None
    if not args.no_iot:
        client = iot_client(settings.region, args.iot_endpoint)
        policy = args.policy_name or f"vts-{settings.stage}-player"
        try:
            provisioned = provision_player(client, key, policy, args.out, settings.region)
        except Exception as error:  # boto3's errors: report them plainly
            return _fail(f"IoT provisioning failed: {error}", 1)
    try:
        record, created = dynamodb_services(settings).players.register(
            key, args.owner, args.country, args.timezone
        )
    except VTSError as error:
        hint = f" (IoT thing {key} was created; run again to retry)" if provisioned else ""
        return _fail(f"{error.message}{hint}", 1)
    print(f"player {record.player_key} {'registered' if created else 'updated'} "
          f"for owner {record.owner_id}")
    if provisioned is not None:
        print(f"  thing        {provisioned.thing_arn}")
        print(f"  certificate  {provisioned.certificate_arn}")
        print(f"  policy       {provisioned.policy_name}")
        print(f"  key files    {provisioned.directory}")
        print(f"  connect      mqtts://{provisioned.endpoint}:8883 as client id p3a-{key}")
        print("  root CA      https://www.amazontrust.com/repository/AmazonRootCA1.pem")
    return 0


# ---- simulate-players --------------------------------------------------------------------


def parse_posts(text: str) -> list[int]:
    posts: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"--posts: {part!r} is not a post id or a range like 1-12")
        posts.extend(range(int(first), int(last or first) + 1))
    if not posts or min(posts) < 1:
        raise ValueError("--posts needs positive post ids")
    return posts


def simulated_keys(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def tls_players(args: argparse.Namespace) -> list[Any]:
    from vtsops.player_sim import SimulatedPlayer

    if args.cert or args.key:
        if not (args.cert and args.key and args.player_key):
            raise ValueError("--cert, --key and --player-key go together")
        return [SimulatedPlayer(args.player_key, True, args.cert, args.key)]
    players = []
    for info in sorted(args.cert_dir.glob("*/player.json")):
        key = json.loads(info.read_text())["player_key"]
        players.append(SimulatedPlayer(key, True, info.parent / "certificate.pem.crt",
                                       info.parent / "private.pem.key"))
    if not players:
        raise ValueError(f"no registered players under {args.cert_dir} (run vts register-player)")
    return players[: args.players]


def cmd_simulate_players(args: argparse.Namespace) -> int:
    from vtsops.player_sim import SimulatedPlayer, Simulation, simulate
    from vtsops.progress import bar

    try:
        if args.players < 1 or args.messages < 1 or args.rate <= 0:
            raise ValueError("--players, --messages and --rate must be positive")
        for name in ("artwork", "unset_clock", "retransmit", "ack"):
            if not 0 <= getattr(args, name) <= 1:
                raise ValueError(f"--{name.replace('_', '-')} is a share between 0 and 1")
        posts = parse_posts(args.posts)
        if args.endpoint:
            if not args.ca:
                raise ValueError("--endpoint needs --ca (Amazon Root CA 1)")
            players = tls_players(args)
        else:
            rng = random.Random(args.seed)
            players = [SimulatedPlayer(key, rng.random() >= args.unset_clock)
                       for key in simulated_keys(args.players, args.seed)]
    except ValueError as error:
        return _fail(str(error))
    if not args.endpoint and not args.no_register:
        problem = _register_simulated(players, args.owner_prefix, posts)
        if problem:
            return _fail(problem, 1)
    sim = Simulation(
        players=players, posts=posts, messages=args.messages, rate=args.rate,
        artwork_share=args.artwork, retransmit_share=args.retransmit, ack_share=args.ack,
        ack_wait_s=args.ack_wait, seed=args.seed, host=args.host, port=args.port,
        endpoint=args.endpoint, ca_file=args.ca,
    )
    target = f"mqtts://{args.endpoint}:8883" if args.endpoint else f"mqtt://{args.host}:{args.port}"
    print(f"simulating {len(players)} players -> {target}", file=sys.stderr)
    try:
        with bar(args.messages, "publishing view reports") as advance:
            report = simulate(sim, progress=advance)
    except Exception as error:  # awscrt's connection errors: report them plainly
        return _fail(f"simulation failed: {error}", 1)
    summary = report.as_dict()
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"sent {report.sent} messages ({report.reports} reports + {report.retransmissions} "
              f"retransmissions) in {report.elapsed_s:.1f} s: {report.views} views, "
              f"{report.impressions} impressions, {report.unset_clock} from unset clocks")
        if report.ack_requests:
            print(f"acks: {dict(report.acks)} of {report.ack_requests} requested")
    return 0


def _register_simulated(players: list[Any], owner_prefix: str, posts: list[int]) -> str | None:
    from chalicelib.config import get_settings
    from chalicelib.errors import VTSError
    from chalicelib.wiring import dynamodb_services

    try:
        services = dynamodb_services(get_settings())
        for n, player in enumerate(players):
            services.players.register(player.player_key, f"{owner_prefix}{n}")
        if services.posts.get(posts[0]) is None:
            print(f"note: post {posts[0]} is not registered; reports for unknown posts are "
                  "dropped (the local stack seeds posts 1-12)", file=sys.stderr)
    except VTSError as error:
        return f"could not register the simulated players: {error.message}"
    return None
