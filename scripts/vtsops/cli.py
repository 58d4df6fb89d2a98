"""``vts``: operator commands. Settings come from the environment, else ``.vts/local.env``
(written by the running local stack)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from vtsops.localenv import env_file, read_env_file
from vtsops.stack import ROOT

Command = Callable[[argparse.Namespace], int]


def _load_local_env() -> None:
    for name, value in read_env_file(env_file(ROOT)).items():
        os.environ.setdefault(name, value)


def _fail(message: str, code: int = 2) -> int:
    print(f"vts: error: {message}", file=sys.stderr)
    return code


def cmd_token(args: argparse.Namespace) -> int:
    """Only tokens the API accepts: a person's lives at most 24 h, a service's 30 days,
    with ``iss``/``aud`` when VTS_JWT_ISSUER/VTS_JWT_AUDIENCE are set."""
    from chalicelib.auth import issue_token, max_lifetime_s
    from chalicelib.config import get_settings
    from chalicelib.errors import ConfigError

    secret = os.environ.get("VTS_JWT_SECRET")
    if not secret:
        return _fail(
            "VTS_JWT_SECRET is not set and no local stack settings were found "
            "(start `make run` or export VTS_JWT_SECRET)"
        )
    limit = max_lifetime_s(args.role)
    if not 0 < args.ttl <= limit:
        return _fail(f"--ttl for a {args.role} token must be between 1 and {limit} s")
    try:
        settings = get_settings()
        token = issue_token(
            secret, sub=args.sub, role=args.role, now=datetime.now(UTC), ttl_s=args.ttl,
            issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        )
    except ConfigError as error:
        return _fail(error.message)
    print(token)
    return 0


def cmd_classify_ua(args: argparse.Namespace) -> int:
    from chalicelib.enrich.device import classify

    for line in sys.stdin:
        print(classify(line.rstrip("\r\n")))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from chalicelib.clock import FixedClock
    from chalicelib.config import get_settings
    from chalicelib.errors import VTSError
    from chalicelib.wiring import dynamodb_services
    from vtsops.progress import bar
    from vtsops.seed import seed_demo

    if args.looks < 0 or args.days < 1:
        return _fail("--looks must be >= 0 and --days >= 1")
    now = datetime.now(UTC)
    try:
        services = dynamodb_services(get_settings(), clock=FixedClock(now))
        with bar(args.looks, "seeding demo looks") as advance:
            outcome = seed_demo(
                services, days=args.days, looks=args.looks, now=now, progress=advance
            )
    except VTSError as error:
        return _fail(error.message, 1)
    print(f"seeded: {outcome['counted']} views counted, {outcome['other']} other looks")
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(prog="vts", description="VTS operator commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, Command] = {}

    token = sub.add_parser("token", help="print a dev JWT signed with VTS_JWT_SECRET")
    token.add_argument(
        "--role", required=True, choices=("artist", "moderator", "admin", "service", "viewer")
    )
    token.add_argument("--sub", required=True, help="the subject (artist id, user id...)")
    token.add_argument(
        "--ttl", type=int, default=86_400,
        help="lifetime in seconds (86400, the most for a person; a service's up to 2592000)",
    )
    commands["token"] = cmd_token

    seed = sub.add_parser("seed", help="register demo posts and record demo looks")
    seed.add_argument("--looks", type=int, default=2000)
    seed.add_argument("--days", type=int, default=30)
    commands["seed"] = cmd_seed

    sub.add_parser("classify-ua", help="classify user agents read one per line on stdin")
    commands["classify-ua"] = cmd_classify_ua

    try:
        from vtsops import commands as extra
    except ImportError:
        pass
    else:
        extra.register(sub, commands)
    return parser, commands


def main(argv: list[str]) -> int:
    _load_local_env()
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    handler: Any = commands[args.command]
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
