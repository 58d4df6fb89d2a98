"""``vts stats``: the parser and the terminal tables (rendered from a PostStats)."""

from __future__ import annotations

import argparse
import random
from datetime import UTC, date, datetime

from rich.console import Console
from vtsops import cmd_stats

from tests.statsdata import random_looks
from tests.unit.test_stats_runner import closed_through, stats

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_the_command_registers_its_options() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    commands: dict[str, object] = {}
    cmd_stats.register(sub, commands)  # type: ignore[arg-type]
    args = parser.parse_args(["stats", "123", "--from", "2026-11-01", "--tz", "Asia/Tokyo"])
    assert (args.post_id, args.first, args.last, args.tz) == (
        "123",
        "2026-11-01",
        None,
        "Asia/Tokyo",
    )
    assert commands["stats"] is cmd_stats.cmd_stats


def test_the_tables_show_totals_daily_rows_and_breakdowns() -> None:
    looks = random_looks(random.Random(1), n=300, first=date(2026, 11, 20), days=3, posts={5: "a"})
    items = closed_through(looks, "2026-11-21")
    stats_ = {"post_id": 5, **stats(items, "P#5", {"from": "2026-11-20", "to": "2026-11-22"})}
    console = Console(record=True, width=120)
    cmd_stats.render(stats_, console)
    text = console.export_text()
    assert "post 5" in text and "2026-11-20 .. 2026-11-22 (UTC)" in text
    assert f"{stats_['views']:,}" in text and "≈" in text  # a 3-day union is approximate
    for row in stats_["daily"]:
        assert row["date"] in text
    assert "views by country" in text and "views by referrer" in text
