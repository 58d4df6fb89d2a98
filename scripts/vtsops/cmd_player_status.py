"""``vts player-status``: is a bridge delivering? The last player report VTS handled (who
published it: a frame's own client id or a bridge's) and today's and yesterday's player drop
counters, read with the operator's own table access, as ``GET /v1/health`` shows them.

The last report is kept at each drop flush (``VTS_DROP_FLUSH_S``, 60 s in AWS), so it may be
up to that much behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import timedelta


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Callable[[argparse.Namespace], int]],
) -> None:
    parser = sub.add_parser(
        "player-status",
        help="the last player report (and who published it) and the player drop counters",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    commands["player-status"] = cmd_player_status


def cmd_player_status(args: argparse.Namespace) -> int:
    from chalicelib.clock import SystemClock
    from chalicelib.config import get_settings
    from chalicelib.days import day_of
    from chalicelib.errors import VTSError
    from chalicelib.wiring import dynamodb_services

    now = SystemClock().now()
    days = [day_of(now - timedelta(days=n)) for n in range(2)]
    try:
        store = dynamodb_services(get_settings()).drop_store
        last = store.last_report()
        drops = store.get_drops(days)
    except VTSError as error:
        print(f"vts: error: {error.message}", file=sys.stderr)
        return 1
    player_drops = {k: v for k, v in sorted(drops.items()) if k.startswith("player_")}
    if args.json:
        print(json.dumps({"last_report": last, "drops_since_yesterday": player_drops}, indent=2))
        return 0
    if last is None:
        print("last player report: none yet")
    else:
        print(
            f"last player report: {last.get('at')} from client {last.get('client_id')!r} for "
            f"player {last.get('player_key')} (post {last.get('post_id') or '-'}, sent "
            f"{last.get('sent_at') or 'with no clock'}): {last.get('outcome')}"
        )
    print(f"player drops since yesterday ({days[1]} UTC):")
    for reason, count in player_drops.items() or [("(none)", 0)]:
        print(f"  {reason:<28} {count}")
    return 0
