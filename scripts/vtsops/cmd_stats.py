"""``vts stats POST_ID [--from --to --tz]``: a post's stats as readable terminal tables.

Reads the aggregates directly with the operator's own table access (as an admin would see
them through ``GET /v1/posts/{id}/stats``); ``--json`` prints the PostStats JSON instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

BAR_WIDTH = 30


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    commands: dict[str, Callable[[argparse.Namespace], int]],
) -> None:
    parser = sub.add_parser("stats", help="show a post's stats (views, visitors, breakdowns)")
    parser.add_argument("post_id", help="the post id")
    parser.add_argument("--from", dest="first", help="first local date, YYYY-MM-DD")
    parser.add_argument("--to", dest="last", help="last local date, YYYY-MM-DD (today)")
    parser.add_argument("--tz", help="IANA time zone for day edges and hours (UTC)")
    parser.add_argument("--json", action="store_true", help="print the PostStats JSON")
    commands["stats"] = cmd_stats


def cmd_stats(args: argparse.Namespace) -> int:
    from chalicelib.auth import Claims
    from chalicelib.config import get_settings
    from chalicelib.errors import VTSError
    from chalicelib.wiring import dynamodb_services

    params = {k: v for k, v in (("from", args.first), ("to", args.last), ("tz", args.tz)) if v}
    try:
        services = dynamodb_services(get_settings())
        stats = services.stats.post_stats(Claims(sub="vts-cli", role="admin"), args.post_id, params)
    except VTSError as error:
        print(f"vts: error: {error.message} ({error.code})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        render(stats, Console())
    return 0


def _bar(n: int, most: int) -> str:
    return "█" * (round(n * BAR_WIDTH / most) if most else 0)


def _counts(title: str, counts: Mapping[str, int], total: int) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column(title.split()[-1])
    table.add_column("n", justify="right")
    table.add_column("%", justify="right")
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n:
            table.add_row(key, f"{n:,}", f"{100 * n / total:.1f}" if total else "-")
    return table


def render(stats: Mapping[str, Any], console: Console) -> None:
    approx = "≈" if stats["unique_visitors_approximate"] else ""
    console.print(
        f"[bold]post {stats['post_id']}[/bold]  {stats['from']} .. {stats['to']} ({stats['tz']})"
        f"  fresh as of {stats['fresh_as_of']}"
    )
    totals = Table(show_edge=False)
    for column in ("", "views", "impressions", "unique visitors"):
        totals.add_column(column, justify="right")
    signed_in = stats["authenticated"]
    signed_approx = "≈" if signed_in["unique_visitors_approximate"] else ""
    totals.add_row(
        "everyone",
        f"{stats['views']:,}",
        f"{stats['impressions']:,}",
        f"{approx}{stats['unique_visitors']:,}",
    )
    totals.add_row(
        "signed in",
        f"{signed_in['views']:,}",
        f"{signed_in['impressions']:,}",
        f"{signed_approx}{signed_in['unique_visitors']:,}",
    )
    console.print(totals)
    console.print(
        f"first view {stats['first_view_at'] or '-'}   last view {stats['last_view_at'] or '-'}"
    )

    daily = Table(title="daily", title_justify="left", show_edge=False)
    for column, justify in (
        ("date", "left"),
        ("views", "right"),
        ("impressions", "right"),
        ("visitors", "right"),
        ("", "left"),
    ):
        daily.add_column(column, justify=justify)  # type: ignore[arg-type]
    most = max((row["views"] for row in stats["daily"]), default=0)
    for row in stats["daily"]:
        daily.add_row(
            row["date"],
            f"{row['views']:,}",
            f"{row['impressions']:,}",
            f"{row['unique_visitors']:,}",
            _bar(row["views"], most),
        )
    console.print(daily)

    hours = Table(
        title=f"views by local hour ({stats['tz']})", title_justify="left", show_edge=False
    )
    hours.add_column("hour")
    hours.add_column("views", justify="right")
    hours.add_column("")
    most = max(stats["by_hour_local"])
    for hour, n in enumerate(stats["by_hour_local"]):
        hours.add_row(f"{hour:02d}", f"{n:,}", _bar(n, most))
    console.print(hours)

    total = stats["views"]
    for name in ("country", "device", "source", "channel", "play_order", "referrer"):
        console.print(_counts(f"views by {name}", stats[f"by_{name}"], total))
