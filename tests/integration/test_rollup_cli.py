"""``vts close-days`` and ``vts replay`` against moto (in-process CLI, real tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from vtsops.cli import main
from vtsops.replay import Trace

from chalicelib.clock import FixedClock
from chalicelib.config import Settings
from chalicelib.counts import Target
from chalicelib.model import ViewEvent
from chalicelib.wiring import dynamodb_services

pytestmark = pytest.mark.integration


def test_close_days_closes_the_finished_days(aws_env: Settings, capsys: Any) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    services = dynamodb_services(aws_env, clock=FixedClock(yesterday))
    event = ViewEvent(
        post_id=5,
        owner_id="artist-1",
        intent="view",
        occurred_at=yesterday,
        visitor="h:x",
        authenticated=False,
        source="web",
        device="desktop",
    )
    services.events.put_view(event)
    services.aggregator.handle({"Records": []})
    # The marker the stream handler would have written (no pump in this test).
    services.aggregate_items.put_items([{"pk": f"DAY#{event.day}", "sk": "P#5"}])
    services.aggregate_items.advance_watermark((yesterday - timedelta(days=2)).strftime("%Y-%m-%d"))
    assert main(["close-days", "--through", event.day]) == 0
    out = capsys.readouterr().out
    assert "closed 2 Day(s)" in out and f"watermark {event.day}" in out
    assert (services.aggregates.closed_day(Target.post(5), event.day) or {})["v"] == 1
    assert main(["close-days"]) == 0
    assert "nothing to close" in capsys.readouterr().out


def test_replay_checks_the_closed_days_against_the_truth(
    aws_env: Settings, tmp_path: Path, capsys: Any
) -> None:
    saved = tmp_path / "trace.jsonl"
    code = main(
        [
            "replay",
            "--looks",
            "1000",
            "--days",
            "2",
            "--posts",
            "8",
            "--artists",
            "3",
            "--fast",
            "--batch-size",
            "1000",
            "--pump-every",
            "7200",
            "--save-trace",
            str(saved),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK: all" in out and "equal the truth" in out
    assert len(saved.read_text().splitlines()) == 1000
    # ``vts replay --trace`` reads it back (the round trip itself is a unit test).
    assert len(Trace.from_jsonl(saved).looks) == 1000
